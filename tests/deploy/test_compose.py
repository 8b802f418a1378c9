"""Wiring of deploy/docker/compose.yaml, checked by parsing it (no Docker engine here)."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import skip_or_fail
from harness import require_binary

DOCKER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
# The official image's /etc/nginx/nginx.conf and conf.d/default.conf (nginx 1.27 alpine, after
# its 10-listen-on-ipv6-by-default.sh step). compose mounts neither over them, so our rendered
# conf.d/storefront.conf lives inside this http {} next to default.conf.
OFFICIAL_NGINX_CONF = """\
user  nginx;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;


events {
    worker_connections  1024;
}


http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    #tcp_nopush     on;

    keepalive_timeout  65;

    #gzip  on;

    include /etc/nginx/conf.d/*.conf;
}
"""
OFFICIAL_DEFAULT_CONF = """\
server {
    listen       80;
    listen  [::]:80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"""
# Container paths that exist only inside the image; the test recreates them under a prefix.
CONTAINER_ROOTS = (
    "/etc/nginx",
    "/srv/",
    "/var/www/",
    "/var/log/nginx",
    "/var/run/",
    "/var/cache/nginx",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _depends(service: dict[str, Any]) -> dict[str, Any]:
    depends = service.get("depends_on", {})
    assert isinstance(depends, dict), "depends_on must be the long form with conditions"
    return depends


def _default(value: str) -> str:
    """`${NAME:-default}` as compose reads it with NAME unset (env.example leaves these unset)."""
    return re.sub(r"\$\{\w+(?::-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _volume_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Named-volume or bind source -> (target, mode) for every short-form volume entry."""
    mounts = {}
    for entry in service.get("volumes", []):
        parts = _default(entry).split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        mounts[parts[0]] = (parts[1], mode)
    return mounts


def test_expected_services(compose: dict[str, Any]) -> None:
    # Services behind a profile (monitoring: tests/deploy/test_monitoring.py) start only on demand.
    assert {name for name, s in _services(compose).items() if not s.get("profiles")} == {
        "nginx",
        "migrate",
        "web",
        "worker",
        "beat",
        "postgres",
        "redis",
        "cache",
        "memcached",
        "certbot",
    }


def test_migrations_run_once_in_a_one_off_service_before_the_app(compose: dict[str, Any]) -> None:
    services = _services(compose)
    migrate = services["migrate"]
    assert migrate["image"] == services["web"]["image"]
    assert migrate["command"] == ["prepare"]  # entrypoint.sh: migrate, publish static, exit
    assert migrate["restart"] == "no"
    assert _volume_mounts(migrate)["static"] == _volume_mounts(services["web"])["static"]
    for name in ("web", "worker", "beat"):
        assert _depends(services[name])["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["environment"]["STOREFRONT_MIGRATE"] == "0"
        assert services[name]["environment"]["STOREFRONT_COLLECTSTATIC"] == "0"
    entrypoint = (DOCKER_DIR / "entrypoint.sh").read_text()
    assert '"${1:-}" == prepare' in entrypoint


def test_celery_worker_and_beat_run_the_app_image(compose: dict[str, Any]) -> None:
    services = _services(compose)
    web, worker, beat = services["web"], services["worker"], services["beat"]
    for service, role in ((worker, "worker"), (beat, "beat")):
        assert service["image"] == web["image"]
        assert service["env_file"] == web["env_file"]
        assert service["command"][:4] == ["celery", "-A", "storefront", role]
        # The one-off migrate service migrates and publishes static files, before any of them.
        assert service["environment"]["STOREFRONT_MIGRATE"] == "0"
        assert service["environment"]["STOREFRONT_COLLECTSTATIC"] == "0"
        assert _depends(service)["redis"] == {"condition": "service_healthy"}
    assert "inspect ping" in " ".join(worker["healthcheck"]["test"])
    assert beat["healthcheck"]["test"] == ["CMD", "storefront", "check_services", "broker"]
    # The worker writes exports where web serves them to staff; nginx never sees that volume.
    assert _volume_mounts(worker)["private"][0] == _volume_mounts(web)["private"][0]
    assert "private" not in _volume_mounts(services["nginx"])
    assert "container_name" not in worker  # scalable
    assert "beat" in compose["volumes"]


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        if name == "migrate":  # one-off: it exits once done, and what waits for it needs exit 0
            assert service["healthcheck"] == {"disable": True}
            continue
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"


def test_web_waits_for_healthy_backends(compose: dict[str, Any]) -> None:
    depends = _depends(_services(compose)["web"])
    for backend in ("postgres", "redis", "cache", "memcached"):
        assert depends[backend] == {"condition": "service_healthy"}


def _redis_options(service: dict[str, Any]) -> dict[str, str]:
    """`redis-server --name value ...` as {name: value}."""
    command = service["command"]
    assert command[0] == "redis-server"
    names, values = command[1::2], command[2::2]
    assert all(name.startswith("--") for name in names) and len(names) == len(values)
    return {name.removeprefix("--"): value for name, value in zip(names, values, strict=True)}


def test_sessions_and_queue_never_share_a_server_with_the_evicting_cache(
    compose: dict[str, Any],
) -> None:
    """Eviction is per server: the cache gets its own (bounded, LRU, not persisted), and the
    server holding sessions and the task queue never evicts and keeps an append-only file."""
    services = _services(compose)
    durable, cache = _redis_options(services["redis"]), _redis_options(services["cache"])
    assert durable["maxmemory-policy"] == "noeviction"
    assert durable["appendonly"] == "yes"
    assert _volume_mounts(services["redis"])["redis-data"][0] == "/data"
    assert "redis-data" in compose["volumes"]
    assert cache["maxmemory"] == "256mb"
    assert cache["maxmemory-policy"] == "allkeys-lru"
    assert (cache["save"], cache["appendonly"]) == ("", "no")
    assert services["cache"]["image"] == services["redis"]["image"]
    assert services["cache"]["healthcheck"]["test"] == services["redis"]["healthcheck"]["test"]
    assert _depends(services["worker"])["cache"] == {"condition": "service_healthy"}
    # The app's environment points each role at its server (compose's service names).
    env = _env_example()
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    assert urlsplit(env["CELERY_BROKER_URL"]).hostname == "redis"
    assert urlsplit(env["REDIS_CACHE_URL"]).hostname == "cache"


def test_nginx_waits_for_healthy_web(compose: dict[str, Any]) -> None:
    assert _depends(_services(compose)["nginx"])["web"] == {"condition": "service_healthy"}


def test_web_healthcheck_probes_healthz(compose: dict[str, Any]) -> None:
    test = _services(compose)["web"]["healthcheck"]["test"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(test)


def test_web_trusts_the_proxy_and_runs_production(compose: dict[str, Any]) -> None:
    """Only nginx reaches web (no published port), so web believes its X-Forwarded-Proto; and
    production settings come from the image even if .env forgets STOREFRONT_ENV."""
    web = _services(compose)["web"]
    assert web["environment"]["STOREFRONT_BEHIND_PROXY"] == "1"
    assert "ports" not in web
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    assert "STOREFRONT_ENV=production" in dockerfile[dockerfile.rindex("\nFROM ") :]


def test_web_can_scale(compose: dict[str, Any]) -> None:
    web = _services(compose)["web"]
    assert "container_name" not in web
    assert "ports" not in web  # a fixed host port would collide with --scale web=3
    assert web["environment"]["GUNICORN_BIND"] == "0.0.0.0:8000"


def test_static_volume_shared_read_only_in_nginx(compose: dict[str, Any]) -> None:
    services = _services(compose)
    web, nginx = _volume_mounts(services["web"]), _volume_mounts(services["nginx"])
    for volume in ("static", "media"):
        assert volume in compose["volumes"]
        assert web[volume][1] == "rw"
        assert nginx[volume] == (web[volume][0], "ro")
    assert services["web"]["environment"]["STATIC_ROOT"] == web["static"][0]
    assert "postgres-data" in _volume_mounts(services["postgres"])


def test_nginx_renders_the_shared_templates(compose: dict[str, Any]) -> None:
    nginx = _services(compose)["nginx"]
    target, mode = _volume_mounts(nginx)["../nginx/templates"]
    assert (target, mode) == ("/etc/nginx/templates", "ro")
    environment = nginx["environment"]
    assert environment["NGINX_UPSTREAMS"] == "server web:8000;"
    # Requests go to web:8000 resolved by Docker's DNS while nginx runs (replicas come and go).
    assert environment["NGINX_BACKEND"] == "web:8000"
    assert environment["NGINX_RESOLVER"].startswith("resolver 127.0.0.11 valid=")
    assert environment["NGINX_STATIC_ROOT"] == _volume_mounts(nginx)["static"][0]
    assert environment["NGINX_MEDIA_ROOT"] == _volume_mounts(nginx)["media"][0]
    # The microcache in the image's own cache directory, which its nginx user may write to.
    assert environment["NGINX_CACHE_DIR"].startswith("/var/cache/nginx/")


def test_app_services_read_the_env_file(compose: dict[str, Any]) -> None:
    for name in ("web", "nginx"):
        # .env beside compose.yaml unless STOREFRONT_ENV_FILE names another (make compose-test).
        assert _default(_services(compose)[name]["env_file"]) == ".env"
    assert (DOCKER_DIR / "env.example").is_file()


def test_nginx_template_variables_are_all_set(compose: dict[str, Any]) -> None:
    templates = sorted((DOCKER_DIR / "../nginx/templates").rglob("*.template"))
    if not templates:
        pytest.skip("deploy/nginx/templates/*.template not in this checkout yet")
    used = set(re.findall(r"\$\{(NGINX_[A-Z_]+)\}", "".join(p.read_text() for p in templates)))
    # Each one is fixed by compose or chosen per site in env.example.
    missing = used - set(_services(compose)["nginx"]["environment"]) - _documented()
    assert not missing, f"set these for the nginx service: {sorted(missing)}"


def _documented() -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in (DOCKER_DIR / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }


def _env_example() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in (DOCKER_DIR / "env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )


def test_env_example_documents_what_the_stack_reads(compose: dict[str, Any]) -> None:
    documented = _documented()
    required = {"SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "STOREFRONT_ENV", "REDIS_URL"}
    required |= {"REDIS_CACHE_URL"}
    required |= {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "NGINX_HTTP_PORT"}
    assert required <= documented


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        image = _default(service["image"])  # NGINX_IMAGE & co. replace it, pinned as well
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
        assert any(ch.isdigit() for ch in tag), f"{name}: tag {tag!r} names no version"


def test_web_builds_the_repo_dockerfile(compose: dict[str, Any]) -> None:
    build = _services(compose)["web"]["build"]
    context = (DOCKER_DIR / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / ".dockerignore").is_file()


def test_every_snippet_nginx_includes_exists_in_the_container(compose: dict[str, Any]) -> None:
    """The official image renders templates only; the brotli snippets our renderer writes for
    local runs must come from a mount, or nginx would not start."""
    templates = DOCKER_DIR.parent / "nginx" / "templates"
    included = set()
    for template in templates.rglob("*.template"):
        included |= set(
            re.findall(r"include \$\{NGINX_SNIPPET_DIR\}/([\w.${}-]+)", template.read_text())
        )
    rendered = {
        p.name.removesuffix(".template") for p in (templates / "snippets").glob("*.template")
    }
    nginx = _services(compose)["nginx"]
    snippet_dir = nginx["environment"]["NGINX_SNIPPET_DIR"]
    mounted = {}
    for volume in nginx["volumes"]:
        source, target = _default(volume).split(":")[:2]
        if target.startswith(snippet_dir + "/"):
            mounted[target.rsplit("/", 1)[1]] = DOCKER_DIR / source
    profile_files = {f"http-{p}.conf" for p in ("dev", "production")}
    missing = {
        name
        for name in included
        if "${" not in name and name not in rendered and name not in mounted
    }
    assert not missing
    assert {"brotli.conf", "brotli-static.conf"} <= set(mounted)
    assert all(path.is_file() for path in mounted.values())
    assert profile_files <= rendered


def test_nginx_healthcheck_uses_the_plain_http_probe(compose: dict[str, Any]) -> None:
    test = " ".join(_services(compose)["nginx"]["healthcheck"]["test"])
    assert "http://127.0.0.1/nginx-healthz" in test


def _container_env(compose: dict[str, Any]) -> dict[str, str]:
    """The nginx container's environment: env_file (env.example standing in for .env), then
    the service's `environment`, which wins in compose."""
    env = {}
    for line in (DOCKER_DIR / "env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            env[name] = value
    # compose interpolates ${NAME:-default} in compose.yaml from .env (and the shell) first.
    interpolated = {
        k: re.sub(
            r"\$\{(\w+)(?::-([^}]*))?\}",
            lambda m: env.get(m.group(1)) or (m.group(2) or ""),
            str(v),
        )
        for k, v in _services(compose)["nginx"]["environment"].items()
    }
    env.update(interpolated)
    return env


def _in_prefix(root: Path, text: str) -> str:
    """Move the image's absolute paths under root (they cannot exist on this machine)."""
    for container_path in CONTAINER_ROOTS:
        text = re.sub(rf"(?<![\w/.]){re.escape(container_path)}", f"{root}{container_path}", text)
    return text


def test_compose_nginx_config_passes_nginx_t(compose: dict[str, Any], tmp_path: Path) -> None:
    """Render the templates the way the official image's 20-envsubst-on-templates.sh does
    (`envsubst "${NAME} ..."` listing every environment variable matching
    NGINX_ENVSUBST_FILTER, templates/a/b.template -> conf.d/a/b), lay out the mounts of
    compose.yaml beside the image's own nginx.conf and default.conf, and run `nginx -t`."""
    nginx_bin, envsubst = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("envsubst")
    if not os.access(nginx_bin, os.X_OK):
        skip_or_fail("nginx not installed (apt-get install nginx)")
    if not envsubst:
        skip_or_fail("envsubst not installed (apt-get install gettext-base)")
    openssl = shutil.which("openssl")
    if not openssl:
        skip_or_fail("openssl not installed (apt-get install openssl)")
    service = _services(compose)["nginx"]
    root = tmp_path / "container"
    etc = root / "etc" / "nginx"
    (etc / "conf.d").mkdir(parents=True)
    # var/cache/nginx: the image's cache directory, parent of NGINX_CACHE_DIR (nginx -t creates
    # the cache directory itself, not its parents).
    for directory in ("var/log/nginx", "var/run", "var/www/acme", "var/cache/nginx"):
        (root / directory).mkdir(parents=True)
    # The image's own files. `user nginx` names an account this machine lacks: run as ours.
    official = OFFICIAL_NGINX_CONF.replace("user  nginx;", f"user  {getpass.getuser()};")
    (etc / "nginx.conf").write_text(_in_prefix(root, official))
    (etc / "conf.d" / "default.conf").write_text(OFFICIAL_DEFAULT_CONF)
    shutil.copyfile("/etc/nginx/mime.types", etc / "mime.types")

    # compose's mounts: bind mounts copied from the repo, named volumes as empty directories.
    for entry in service["volumes"]:
        source, target = _default(entry).split(":")[:2]
        destination = root / target.lstrip("/")
        if not source.startswith("."):
            destination.mkdir(parents=True, exist_ok=True)
        elif (DOCKER_DIR / source).is_dir():
            shutil.copytree(DOCKER_DIR / source, destination)
        elif (DOCKER_DIR / source).is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DOCKER_DIR / source, destination)
        else:  # ./certs: the site's certificate, absent from the repo; a throwaway one here
            destination.mkdir(parents=True)

    env = _container_env(compose)
    # The TLS server exists in every profile, and nginx -t loads its certificate.
    cert, key = (root / env[name].lstrip("/") for name in ("NGINX_TLS_CERT", "NGINX_TLS_KEY"))
    subject = ["-subj", "/CN=shop.example.com", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *subject],
        check=True,
        capture_output=True,
    )

    # The entrypoint's rendering step, with the container's environment.
    pattern = re.compile(env.get("NGINX_ENVSUBST_FILTER", ""))
    shell_format = " ".join(f"${{{name}}}" for name in env if pattern.search(name))
    # Only two rewrites of the rendered values: container paths move under the prefix, and the
    # upstream host `web` (Docker's DNS, unresolvable here: `nginx -t` resolves upstream
    # names) becomes 127.0.0.1.
    values = {name: _in_prefix(root, value) for name, value in env.items()}
    values["NGINX_UPSTREAMS"] = re.sub(r"\bweb:", "127.0.0.1:", values["NGINX_UPSTREAMS"])
    templates = etc / "templates"
    for template in sorted(templates.rglob("*.template")):
        output = etc / "conf.d" / template.relative_to(templates).with_suffix("")
        output.parent.mkdir(parents=True, exist_ok=True)
        rendered = subprocess.run(
            [envsubst, shell_format],
            input=template.read_text(),
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), **values},
            check=True,
        ).stdout
        assert "${NGINX_" not in rendered, f"{template.name}: a variable compose does not set"
        output.write_text(rendered)

    error_log = ["-e", str(root / "var/log/nginx/error.log")]
    checked = subprocess.run(
        [nginx_bin, "-t", "-p", f"{etc}/", "-c", str(etc / "nginx.conf"), *error_log],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    # The image's default.conf also listens on port 80: ours must be the default server there,
    # or the healthcheck's Host 127.0.0.1 would get the welcome page's 404.
    storefront = (etc / "conf.d" / "storefront.conf").read_text()
    assert re.search(rf"listen {env['NGINX_LISTEN_HTTP']} default_server;", storefront)


# --- docker-compose itself -----------------------------------------------------------------

# Every compose file of the repository (its root and deploy/), with the profiles each offers.
REPO = DOCKER_DIR.parents[1]
COMPOSE_FILES = sorted(
    path
    for pattern in ("compose.y*ml", "docker-compose*.y*ml")
    for path in (*REPO.glob(pattern), *(REPO / "deploy").rglob(pattern))
)


def _profiles(path: Path) -> list[str]:
    found = {
        p
        for s in yaml.safe_load(path.read_text())["services"].values()
        for p in s.get("profiles", [])
    }
    return sorted(found)


def _compose_workdir(path: Path, tmp_path: Path) -> Path:
    """A copy of `path`'s directory with .env made from its env.example as an operator would
    (plus the password compose insists on), beside links to the deploy/ directories it names
    with ../ (compose resolves them relative to the file)."""
    workdir = tmp_path / path.parent.name
    shutil.copytree(path.parent, workdir, ignore=shutil.ignore_patterns(".env"))
    example = (path.parent / "env.example").read_text()
    (workdir / ".env").write_text(
        re.sub(r"^POSTGRES_PASSWORD=$", "POSTGRES_PASSWORD=example", example, flags=re.MULTILINE)
    )
    for sibling in path.parent.parent.iterdir():
        if sibling.is_dir() and sibling != path.parent:
            (tmp_path / sibling.name).symlink_to(sibling)
    return workdir


def _docker_compose(
    workdir: Path, name: str, *args: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    binary = require_binary("docker-compose", "docker-compose")
    # Nothing from this shell: the project name and the rest come from .env alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "POSTGRES_"))}
    env.pop("STOREFRONT_RELEASE", None)
    return subprocess.run(
        [binary, "-f", str(workdir / name), *args],
        cwd=workdir,
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_there_is_a_compose_file() -> None:
    assert COMPOSE_FILE in COMPOSE_FILES


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_installed_docker_compose_accepts_the_file(path: Path, tmp_path: Path) -> None:
    """`docker-compose config -q` (Debian's compose 1.29, no engine needed) accepts the file
    as the docs run it, with each of its profiles too; a top-level `name:` would be refused."""
    assert "name" not in yaml.safe_load(path.read_text())
    workdir = _compose_workdir(path, tmp_path)
    for profiles in ([], *(["--profile", p] for p in _profiles(path))):
        done = _docker_compose(workdir, path.name, *profiles, "config", "-q")
        assert done.returncode == 0, (profiles, done.stderr)
        assert done.stdout == ""


def test_the_project_name_comes_from_the_env_file(tmp_path: Path) -> None:
    """Without `name:`, compose names the project after COMPOSE_PROJECT_NAME in .env (else it
    would be the directory's name, "docker"): volumes stay storefront_postgres-data & co."""
    assert _env_example()["COMPOSE_PROJECT_NAME"] == "storefront"
    workdir = _compose_workdir(COMPOSE_FILE, tmp_path)
    binary = require_binary("docker-compose", "docker-compose")
    done = _docker_compose(workdir, COMPOSE_FILE.name, "config")
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    if "name" in resolved:  # compose 2.x prints the project name it resolved
        assert resolved["name"] == "storefront"
        return
    # compose 1.x does not print it: ask its own resolver, with the same interpreter.
    interpreter = Path(binary).read_text(errors="replace").partition("\n")[0].removeprefix("#!")
    asked = subprocess.run(
        [*interpreter.split(), "-c",
         "import sys; from compose.cli.command import get_project_name as name; "
         "print(name(sys.argv[1]))", str(workdir)],
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "storefront"


def test_the_app_image_carries_the_release(tmp_path: Path) -> None:
    """STOREFRONT_RELEASE from the shell reaches web, worker and beat as a build argument, and
    the Dockerfile turns it into the image's environment (Sentry's release tag)."""
    workdir = _compose_workdir(COMPOSE_FILE, tmp_path)
    done = _docker_compose(workdir, COMPOSE_FILE.name, "config", STOREFRONT_RELEASE="0123abc")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    default_base = "python:3.11.7-slim-bookworm"
    for name in ("web", "worker", "beat"):
        assert services[name]["build"]["args"] == {
            "STOREFRONT_RELEASE": "0123abc",
            "PYTHON_IMAGE": default_base,
        }, name
    unset = _docker_compose(workdir, COMPOSE_FILE.name, "config")
    assert yaml.safe_load(unset.stdout)["services"]["web"]["build"]["args"] == {
        "STOREFRONT_RELEASE": "",
        "PYTHON_IMAGE": default_base,
    }
    # Without a registry: the local base (deploy/docker/build_bases.sh), from the shell.
    local = _docker_compose(
        workdir, COMPOSE_FILE.name, "config", PYTHON_IMAGE="local/python:3.11-bookworm"
    )
    args = yaml.safe_load(local.stdout)["services"]["worker"]["build"]["args"]
    assert args["PYTHON_IMAGE"] == "local/python:3.11-bookworm"
    runtime = (DOCKER_DIR / "Dockerfile").read_text().rpartition("\nFROM ")[2]
    assert 'ARG STOREFRONT_RELEASE=""' in runtime
    assert "ENV STOREFRONT_RELEASE=${STOREFRONT_RELEASE}" in runtime
    # The .env must not hand the containers an empty one, which would hide the image's.
    assert "STOREFRONT_RELEASE" not in _env_example()
