"""Every environment variable is written down where operators look.

The variables are found by parsing the code that reads them: storefront/settings.py (its
`env.*` calls) with the storefront modules it hands the environment to (`environ.get(...)`),
and deploy/gunicorn.conf.py. docs/configuration.md's table must list each of them, and
deploy/docker/env.example (the template of compose's .env and systemd's /etc/storefront/env)
must name the observability ones and every variable compose.yaml interpolates, and nothing
that nobody reads.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "storefront" / "settings.py"
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
DOCKER_DIR = REPO / "deploy" / "docker"
ENV_EXAMPLE = DOCKER_DIR / "env.example"
CONFIGURATION_MD = REPO / "docs" / "configuration.md"
# Expressions that stand for the process environment in the parsed modules.
ENVIRON = {"os.environ", "environ", "env.ENVIRON"}
# Logs, metrics and error reports: a production site sets or at least decides each one, so the
# example names them all (nginx's access-log format comes in through compose.yaml).
OBSERVABILITY = {
    "LOG_FORMAT",
    "LOG_LEVEL",
    "SENTRY_DSN",
    "SENTRY_ENVIRONMENT",
    "SENTRY_TRACES_SAMPLE_RATE",
    "STOREFRONT_RELEASE",
    "STOREFRONT_METRICS_TOKEN",
    "STOREFRONT_METRICS_DIR",
}
# Read by compose itself, not by anything in this repository.
COMPOSE_OWN = {"COMPOSE_PROJECT_NAME"}
# ${NAME} in compose.yaml, but not $${NAME} (escaped: the container's shell expands it).
COMPOSE_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)")


def _is_environ(node: ast.expr) -> bool:
    return ast.unparse(node) in ENVIRON


def _name_read(node: ast.AST) -> str | None:
    """The variable one AST node reads, if it is a read of the environment."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        reads = (
            (isinstance(func, ast.Attribute) and ast.unparse(func.value) == "env")
            or (isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value))
            or (isinstance(func, ast.Name) and func.id.startswith("_env_"))
        )
        value = node.args[0].value
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        reads, value = _is_environ(node.value), node.slice.value
    elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant):
        reads, value = any(_is_environ(c) for c in node.comparators), node.left.value
    else:
        return None
    return value if reads and isinstance(value, str) else None


def variables_read(path: Path) -> set[str]:
    """Names of the environment variables `path` reads: env.str("X", ...) and the other
    django-environ getters, environ.get("X"), os.environ["X"], "X" in os.environ, and
    gunicorn.conf.py's _env_*("X", ...) helpers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {name for node in ast.walk(tree) if (name := _name_read(node))}


def settings_modules() -> list[Path]:
    """settings.py and the storefront modules it imports (errors.py, log_format.py ... are
    handed the environment and read variables of their own)."""
    modules = [SETTINGS]
    for node in ast.parse(SETTINGS.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("storefront."):
            modules.append(REPO / (node.module.replace(".", "/") + ".py"))
    return modules


def app_variables() -> set[str]:
    found: set[str] = set()
    for module in [*settings_modules(), GUNICORN_CONF]:
        found |= variables_read(module)
    return found


def configuration_table() -> set[str]:
    """The variables docs/configuration.md's table lists (first column, `NAME` cells)."""
    names: set[str] = set()
    for line in CONFIGURATION_MD.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


def env_example() -> set[str]:
    """Names env.example sets (NAME=value) or shows commented out (# NAME=value)."""
    return set(re.findall(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def compose_variables() -> set[str]:
    return set(COMPOSE_INTERPOLATION.findall((DOCKER_DIR / "compose.yaml").read_text()))


def test_the_parser_finds_each_way_of_reading(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import os\n"
        'A = env.int("VIA_ENV", default=1)\n'
        'B = env.ENVIRON.get("VIA_ENVIRON_GET", "")\n'
        'C = os.environ["VIA_SUBSCRIPT"]\n'
        'D = "VIA_IN" in os.environ\n'
        'E = _env_str("VIA_HELPER", "x")\n'
        'F = {"x": 1}.get("NOT_A_VARIABLE")\n'
        'os.environ.setdefault("SET_NOT_READ", "1")\n'
    )
    assert variables_read(module) == {
        "VIA_ENV",
        "VIA_ENVIRON_GET",
        "VIA_SUBSCRIPT",
        "VIA_IN",
        "VIA_HELPER",
    }


def test_the_helpers_settings_hands_the_environment_are_read_too() -> None:
    names = {path.name for path in settings_modules()}
    assert {"errors.py", "log_format.py", "metrics_dirs.py"} <= names
    # Read through init_error_reporting(env.ENVIRON) and log_format_from_environ(...), not env.*.
    assert {"SENTRY_DSN", "STOREFRONT_RELEASE", "LOG_FORMAT"} <= app_variables()
    assert "SENTRY_DSN" not in variables_read(SETTINGS)


def test_configuration_md_lists_every_variable_the_app_reads() -> None:
    missing = app_variables() - configuration_table()
    assert not missing, f"add these to docs/configuration.md's table: {sorted(missing)}"


def test_env_example_names_the_observability_variables() -> None:
    assert app_variables() >= OBSERVABILITY  # each one is really read
    missing = OBSERVABILITY - env_example()
    assert not missing, f"add these to deploy/docker/env.example: {sorted(missing)}"


def test_env_example_names_every_variable_compose_interpolates() -> None:
    used = compose_variables()
    assert {"NGINX_LOG_FORMAT", "STOREFRONT_RELEASE", "POSTGRES_PASSWORD"} <= used
    missing = used - env_example()
    assert not missing, f"add these to deploy/docker/env.example: {sorted(missing)}"


def test_env_example_names_nothing_nobody_reads() -> None:
    """A misspelt name (SENTRY_DNS) would be ignored silently: every name in the example is
    read by the app, compose, the nginx templates or the container entrypoint."""
    templates = "".join(
        path.read_text() for path in (REPO / "deploy" / "nginx" / "templates").rglob("*.template")
    )
    entrypoint = (DOCKER_DIR / "entrypoint.sh").read_text()
    known = (
        app_variables()
        | compose_variables()
        | COMPOSE_OWN
        | set(re.findall(r"\$\{(NGINX_[A-Z0-9_]+)\}", templates))
        | set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", entrypoint))
        # The postgres image's own (compose.yaml interpolates only some of them).
        | {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}
    )
    unknown = env_example() - known
    assert not unknown, f"nothing reads these: {sorted(unknown)}"
