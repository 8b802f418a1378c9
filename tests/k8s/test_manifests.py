"""The Kubernetes manifests (deploy/k8s): each overlay renders, validates, and says what we mean.

No cluster runs here. Each overlay is rendered with `kubectl kustomize` (kustomize v5: kubectl
1.27 or newer; Debian 12's kubernetes-client is kubectl 1.20, kustomize v2, too old for the
overlays' generators) and every object is validated, strictly (unknown fields are errors), against
the Kubernetes OpenAPI schemas that kubernetes-validate ships for KUBERNETES_VERSION. Then the
behaviour a reviewer checks by hand: non-root read-only containers with requests and limits,
probes on /healthz and /readyz at gunicorn's port, a singleton beat, the migration Job, an HPA on
CPU and on request rate, budgets and policies, and a ConfigMap and Secret that match what the
containers read and what docs/configuration.md documents.

The prod overlay reads a gitignored secrets.env: the test renders a copy of deploy/ with a
throwaway one made from secrets.env.example. Without kubectl: skipped, or failed with
STOREFRONT_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import skip_or_fail

# The one pinned Kubernetes version the manifests are validated against (the newest that
# kubernetes-validate, pinned in pyproject.toml, ships schemas for). docs/kubernetes.md names it.
KUBERNETES_VERSION = "1.37.0"

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
DOCS = REPO / "docs" / "kubernetes.md"
CONFIGURATION_MD = REPO / "docs" / "configuration.md"
ENV_EXAMPLE = REPO / "deploy" / "docker" / "env.example"
NGINX_TEMPLATES = REPO / "deploy" / "nginx" / "templates"
APP_IMAGE = "storefront"
APP_PORT = 8000


# The oldest kustomize the overlays render with (configMapGenerator `envs`, `labels`).
MIN_KUSTOMIZE = (5, 0)


@cache
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        skip_or_fail("kubectl not installed (kubectl 1.27 or newer, with kustomize v5)")
    done = subprocess.run(
        [path, "version", "--client"], capture_output=True, text=True, timeout=30, check=False
    )  # type: ignore[list-item]
    found = re.search(r"Kustomize Version: v(\d+)\.(\d+)", done.stdout)
    if not found or (int(found.group(1)), int(found.group(2))) < MIN_KUSTOMIZE:
        skip_or_fail(
            f"{path} embeds kustomize older than v{MIN_KUSTOMIZE[0]} "
            f"({done.stdout.strip().splitlines()[0] if done.stdout.strip() else 'no version'}): "
            "install kubectl 1.27 or newer"
        )
    return path  # type: ignore[return-value]


@cache
def _render(overlay: str, workdir: str) -> tuple[dict[str, Any], ...]:
    root = Path(workdir)
    # The overlays reach ../../base and base reaches ../../nginx: copy both trees.
    shutil.copytree(K8S, root / "deploy" / "k8s", ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copytree(REPO / "deploy" / "nginx", root / "deploy" / "nginx")
    overlay_dir = root / "deploy" / "k8s" / "overlays" / overlay
    example = overlay_dir / "secrets.env.example"
    if example.exists():
        # A throwaway Secret: every empty value filled with an obviously fake one.
        lines = [
            f"{line}test-only-value" if re.fullmatch(r"[A-Z][A-Z0-9_]*=", line) else line
            for line in example.read_text().splitlines()
        ]
        (overlay_dir / "secrets.env").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [kubectl(), "kustomize", str(overlay_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], ...]]:
    return {
        overlay: _render(overlay, str(tmp_path_factory.mktemp(f"k8s-{overlay}")))
        for overlay in OVERLAYS
    }


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (match,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return match


def pod_specs(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def generated(objects: tuple[dict[str, Any], ...], kind: str, prefix: str) -> dict[str, Any]:
    """The ConfigMap or Secret a generator made (its name carries a content hash)."""
    (match,) = [
        o
        for o in of_kind(objects, kind)
        if re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])
    ]
    return match


# --- rendering and schema validation -----------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_pinned_kubernetes(rendered, overlay: str) -> None:
    objects = rendered[overlay]
    assert len(objects) > 20
    for obj in objects:
        where = f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} is invalid for Kubernetes {KUBERNETES_VERSION}: {exc}")
        except kubernetes_validate.SchemaNotFoundError:
            # Only core kinds are used (cert-manager through the Ingress annotation, no CRD).
            pytest.fail(f"{where}: no schema in Kubernetes {KUBERNETES_VERSION} (a CRD?)")


def test_strict_validation_catches_a_misspelt_field(rendered) -> None:
    job = yaml.safe_load(yaml.safe_dump(named(rendered["prod"], "Job", "storefront-migrate")))
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_the_pinned_version_is_the_one_the_docs_name() -> None:
    major_minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert f"Kubernetes {major_minor}" in DOCS.read_text()
    assert kubernetes_validate.latest_version() >= major_minor


# --- security and resources --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_non_root_read_only_and_bounded(rendered, overlay: str) -> None:
    for where, spec in pod_specs(rendered[overlay]):
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, where
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in containers(spec):
            name = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, name
            assert sc.get("runAsUser", pod.get("runAsUser", 0)) != 0, name
            resources = c.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{name}: {bound}"
            # /tmp is writable (an emptyDir) wherever the root filesystem is not.
            if c["name"] != "static":
                assert "/tmp" in {m["mountPath"] for m in c.get("volumeMounts", [])}, name


def test_app_containers_get_writable_volumes_for_the_paths_the_image_uses(rendered) -> None:
    """STOREFRONT_VAR_DIR, STATIC_ROOT, MEDIA_ROOT, PRIVATE_MEDIA_ROOT (the Dockerfile's ENV)."""
    objects = rendered["prod"]
    mounts = {
        c["name"]: {m["mountPath"]: m.get("readOnly", False) for m in c["volumeMounts"]}
        for _, spec in pod_specs(objects)
        for c in containers(spec)
    }
    assert mounts["app"]["/srv/storefront/var"] is False
    assert mounts["app"]["/srv/storefront/media"] is False
    assert mounts["app"]["/srv/storefront/private"] is False
    assert mounts["worker"]["/srv/storefront/private"] is False
    assert mounts["beat"]["/srv/storefront/beat"] is False
    assert mounts["static"]["/srv/storefront/static"] is False
    assert mounts["nginx"]["/srv/storefront/static"] is True
    for path in ("/etc/nginx/conf.d", "/var/cache/nginx", "/tmp"):
        assert mounts["nginx"][path] is False, path


# --- workloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_probes_hit_healthz_and_readyz_on_gunicorns_port(rendered, overlay: str) -> None:
    web = named(rendered[overlay], "Deployment", "storefront-web")
    (app,) = [c for c in web["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    ports = {p["name"]: p["containerPort"] for p in app["ports"]}

    def target(probe: str) -> tuple[str, int]:
        get = app[probe]["httpGet"]
        port = get["port"]
        return get["path"], ports[port] if isinstance(port, str) else port

    assert target("livenessProbe") == ("/healthz", APP_PORT)
    assert target("readinessProbe") == ("/readyz", APP_PORT)
    assert target("startupProbe") == ("/healthz", APP_PORT)
    env = {e["name"]: e.get("value") for e in app["env"]}
    assert env["GUNICORN_BIND"] == f"0.0.0.0:{APP_PORT}"
    # The Service's page port reaches nginx, whose upstream is this gunicorn.
    (nginx,) = [c for c in web["spec"]["template"]["spec"]["containers"] if c["name"] == "nginx"]
    nginx_env = {e["name"]: e.get("value") for e in nginx["env"]}
    assert f"127.0.0.1:{APP_PORT}" in nginx_env["NGINX_UPSTREAMS"]
    service = named(rendered[overlay], "Service", "storefront-web")
    (http,) = [p for p in service["spec"]["ports"] if p["name"] == "http"]
    assert http["targetPort"] == "http"
    assert {"name": "http", "containerPort": 8080} in nginx["ports"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_beat_is_a_singleton_replaced_not_rolled(rendered, overlay: str) -> None:
    beat = named(rendered[overlay], "Deployment", "storefront-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert not [
        h
        for h in of_kind(rendered[overlay], "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == "storefront-beat"
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_prepares_with_the_app_image(rendered, overlay: str) -> None:
    job = named(rendered[overlay], "Job", "storefront-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["prepare"]
    assert container["image"].split(":")[0] == APP_IMAGE
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The Deployments leave migrations to it.
    for name in ("storefront-web", "storefront-worker", "storefront-beat"):
        spec = named(rendered[overlay], "Deployment", name)["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["STOREFRONT_MIGRATE"] == "0", name


def test_deploy_script_waits_for_the_job_before_the_rollout() -> None:
    script = (K8S / "deploy.sh").read_text()
    job = script.index("-l app.kubernetes.io/component=migrate")
    complete = script.index("*Complete*")
    rest = script.index("-l 'app.kubernetes.io/component!=migrate'")
    assert job < complete < rest
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        result = subprocess.run(
            [shellcheck, str(K8S / "deploy.sh")], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout


def test_prod_runs_three_web_pods_scaled_on_cpu_and_request_rate(rendered) -> None:
    prod = rendered["prod"]
    assert named(prod, "Deployment", "storefront-web")["spec"]["replicas"] == 3
    hpa = named(prod, "HorizontalPodAutoscaler", "storefront-web")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "storefront-web",
    }
    assert hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["maxReplicas"] > 3
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "storefront_http_requests_per_second"
    # The adapter rule in the docs turns the app's own counter into that metric.
    docs = DOCS.read_text()
    assert "storefront_http_requests_total" in docs
    assert "storefront_http_requests_per_second" in docs
    assert re.search(
        r'PREFIX \+ "http_requests_total"', (REPO / "storefront/ops/metrics.py").read_text()
    )


def test_dev_runs_one_pod_of_each_without_an_hpa(rendered) -> None:
    dev = rendered["dev"]
    for name in ("storefront-web", "storefront-worker", "storefront-beat"):
        assert named(dev, "Deployment", name)["spec"]["replicas"] == 1, name
    assert not of_kind(dev, "HorizontalPodAutoscaler")


def test_prod_images_are_pinned(rendered) -> None:
    for where, spec in pod_specs(rendered["prod"]):
        for c in containers(spec):
            image = c["image"]
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", f"{where} {c['name']}: {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_select_the_web_pods(rendered, overlay: str) -> None:
    objects = rendered[overlay]
    web_labels = named(objects, "Deployment", "storefront-web")["spec"]["template"]["metadata"][
        "labels"
    ]
    budgets = [
        p
        for p in of_kind(objects, "PodDisruptionBudget")
        if p["spec"]["selector"]["matchLabels"].items() <= web_labels.items()
    ]
    assert budgets, "no PodDisruptionBudget selects the web pods"


# --- network -----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_open_what_is_needed(rendered, overlay: str) -> None:
    policies = {
        p["metadata"]["name"]: p["spec"] for p in of_kind(rendered[overlay], "NetworkPolicy")
    }
    deny = [
        s
        for s in policies.values()
        if s["podSelector"] == {}
        and set(s["policyTypes"]) == {"Ingress", "Egress"}
        and not s.get("ingress")
        and not s.get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"
    dns_ports = {
        (p["protocol"], p["port"])
        for s in policies.values()
        for e in s.get("egress", [])
        for p in e.get("ports", [])
    }
    assert {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6432), ("TCP", 6379)} <= dns_ports
    assert {("TCP", 26379), ("TCP", 587)} <= dns_ports
    web = policies["storefront-web-ingress"]
    sources = [f for rule in web["ingress"] for f in rule["from"]]
    assert any(
        f["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
        for f in sources
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_terminates_tls_through_cert_manager(rendered, overlay: str) -> None:
    (ingress,) = of_kind(rendered[overlay], "Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] == "storefront-tls"
    assert tls["hosts"] == [rule["host"] for rule in ingress["spec"]["rules"]]
    # Uploads up to the sidecar's limit get through the controller.
    config = generated(rendered[overlay], "ConfigMap", "storefront-config")["data"]
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body == config["NGINX_CLIENT_MAX_BODY_SIZE"]
    assert config["NGINX_SERVER_NAME"] == tls["hosts"][0]
    assert tls["hosts"][0] in config["ALLOWED_HOSTS"].split(",")


# --- configuration -----------------------------------------------------------------------------


def _documented_in_configuration_md() -> set[str]:
    names: set[str] = set()
    for line in CONFIGURATION_MD.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


def _documented_in_env_example() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def _scale_out_variables() -> set[str]:
    """The scale-out table of docs/kubernetes.md (issue 15's PgBouncer, replicas, Sentinel)."""
    text = DOCS.read_text().split("## Scale-out variables", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", text, re.MULTILINE))


def documented() -> set[str]:
    return _documented_in_configuration_md() | _documented_in_env_example() | _scale_out_variables()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_secret_keys_are_documented_variables(rendered, overlay: str) -> None:
    known = documented()
    assert {"SECRET_KEY", "DATABASE_URL", "GUNICORN_WORKERS", "NGINX_RATE_AUTH"} <= known
    config = generated(rendered[overlay], "ConfigMap", "storefront-config")
    secret = generated(rendered[overlay], "Secret", "storefront-secrets")
    assert set(config["data"]) - known == set()
    assert set(secret["data"]) - known == set()
    # Secrets never sit in the ConfigMap.
    assert not {"SECRET_KEY", "DATABASE_URL", "STOREFRONT_METRICS_TOKEN"} & set(config["data"])
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL"} <= set(secret["data"])


def test_prod_uses_the_scale_out_variables(rendered) -> None:
    prod = rendered["prod"]
    config = generated(prod, "ConfigMap", "storefront-config")["data"]
    secret = generated(prod, "Secret", "storefront-secrets")["data"]
    assert {"PGBOUNCER_URL", "DATABASE_REPLICA_URLS", "REDIS_SENTINEL_PASSWORD"} <= set(secret)
    assert config["REDIS_SENTINEL_MASTER"] == "storefront"
    sentinels = config["REDIS_SENTINELS"].split(",")
    assert len(sentinels) >= 3
    assert all(re.fullmatch(r"[a-z0-9.-]+:\d+", s) for s in sentinels)
    assert _scale_out_variables() == {
        "PGBOUNCER_URL",
        "DATABASE_REPLICA_URLS",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
        "REDIS_SENTINEL_PASSWORD",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_config_key_and_object_exists(rendered, overlay: str) -> None:
    objects = rendered[overlay]
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in of_kind(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"]: o.get("data", {}) for o in of_kind(objects, "Secret")}
    claims = {o["metadata"]["name"] for o in of_kind(objects, "PersistentVolumeClaim")}
    for where, spec in pod_specs(objects):
        for c in containers(spec):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, where
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, where
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    key = ref["configMapKeyRef"]
                    assert key["key"] in config_maps[key["name"]], f"{where}: {e['name']}"
                if "secretKeyRef" in ref:
                    key = ref["secretKeyRef"]
                    assert key["key"] in secrets[key["name"]], f"{where}: {e['name']}"
            # $(VAR) in args comes from the container's environment.
            env_names = {e["name"] for e in c.get("env", [])} | {
                k
                for source in c.get("envFrom", [])
                if "configMapRef" in source
                for k in config_maps[source["configMapRef"]["name"]]
            }
            for arg in c.get("args", []):
                for var in re.findall(r"\$\(([A-Z_]+)\)", arg):
                    assert var in env_names, f"{where}: $({var})"
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, where
            sources = [volume, *volume.get("projected", {}).get("sources", [])]
            for s in sources:
                if "configMap" in s:
                    data = config_maps[s["configMap"]["name"]]
                    for item in s["configMap"].get("items", []):
                        assert item["key"] in data, f"{where}: {item['key']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sidecar_renders_every_project_nginx_template(rendered, overlay: str) -> None:
    """All of deploy/nginx/templates reach the sidecar at their paths, with every variable set."""
    web = named(rendered[overlay], "Deployment", "storefront-web")
    spec = web["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "nginx-templates"]
    paths = {
        item["path"] for s in volume["projected"]["sources"] for item in s["configMap"]["items"]
    }
    templates = {
        p.relative_to(NGINX_TEMPLATES).as_posix() for p in NGINX_TEMPLATES.rglob("*.template")
    }
    assert templates <= paths
    # The same content as the repository's files (no hand-made copy).
    config_maps = {
        o["metadata"]["name"]: o.get("data", {}) for o in of_kind(rendered[overlay], "ConfigMap")
    }
    (source,) = [
        s
        for s in volume["projected"]["sources"]
        if s["configMap"]["name"].startswith("storefront-nginx-templates-")
    ]
    for item in source["configMap"]["items"]:
        expected = (NGINX_TEMPLATES / item["path"]).read_text()
        assert config_maps[source["configMap"]["name"]][item["key"]] == expected, item["path"]
    (nginx,) = [c for c in spec["containers"] if c["name"] == "nginx"]
    used = set(
        re.findall(
            r"\$\{(NGINX_[A-Z_]+)\}",
            "".join(p.read_text() for p in NGINX_TEMPLATES.rglob("*.template")),
        )
    )
    assert used - {e["name"] for e in nginx["env"]} == set()
