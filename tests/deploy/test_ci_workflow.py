"""Shape of the hosted CI/CD workflow (.github/workflows/ci.yml), checked by parsing it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
MAIN_ONLY = "github.ref == 'refs/heads/main' && github.event_name == 'push'"
# A release tag (v4, v4.1.2) or a full commit SHA; never a branch such as @main or @master.
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _jobs(workflow: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    return workflow["jobs"]


def _needs(job: dict[str, Any]) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def test_triggers(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"]
    assert "pull_request" in triggers


def test_jobs_run_in_order(workflow: dict[Any, Any]) -> None:
    jobs = _jobs(workflow)
    assert set(jobs) == {"tests", "image", "deploy"}
    assert _needs(jobs["tests"]) == set()
    assert _needs(jobs["image"]) == {"tests"}
    assert _needs(jobs["deploy"]) == {"tests", "image"}


def test_tests_job_runs_ci_script_against_services(workflow: dict[Any, Any]) -> None:
    job = _jobs(workflow)["tests"]
    assert {"postgres", "redis"} <= set(job["services"])
    for service in job["services"].values():
        assert "--health-cmd" in service["options"]
    assert any("bash .ci/run" in step.get("run", "") for step in _steps(job))


def test_image_job_builds_the_dockerfile(workflow: dict[Any, Any]) -> None:
    steps = _steps(_jobs(workflow)["image"])
    build = next(s for s in steps if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["file"] == "deploy/docker/Dockerfile"
    assert build["with"]["context"] == "."
    assert build["with"]["tags"].startswith("${{ vars.REGISTRY }}/")
    assert MAIN_ONLY in build["with"]["push"]
    # The image tags its Sentry events with the commit it was built from, like deploy.sh does.
    assert build["with"]["build-args"] == "STOREFRONT_RELEASE=${{ github.sha }}"
    login = next(s for s in steps if s.get("uses", "").startswith("docker/login-action@"))
    assert login["with"] == {
        "registry": "${{ vars.REGISTRY }}",
        "username": "${{ secrets.REGISTRY_USERNAME }}",
        "password": "${{ secrets.REGISTRY_PASSWORD }}",
    }


def test_deploy_only_on_main(workflow: dict[Any, Any]) -> None:
    assert _jobs(workflow)["deploy"]["if"] == MAIN_ONLY


def test_deploy_runs_the_script_with_secrets(workflow: dict[Any, Any]) -> None:
    steps = _steps(_jobs(workflow)["deploy"])
    env: dict[str, str] = {}
    for step in steps:
        env.update(step.get("env", {}))
    assert env["SSH_KEY"] == "${{ secrets.DEPLOY_SSH_KEY }}"
    assert env["KNOWN_HOSTS"] == "${{ secrets.DEPLOY_SSH_KNOWN_HOSTS }}"
    assert env["DEPLOY_HOST"] == "${{ secrets.DEPLOY_HOST }}"
    assert env["DEPLOY_USER"] == "${{ secrets.DEPLOY_USER }}"
    script = "\n".join(step.get("run", "") for step in steps)
    assert "deploy/scripts/deploy.sh" in script
    assert "StrictHostKeyChecking=yes" in script
    assert "${{" not in script  # secrets reach the shell through env, never pasted into it


def test_no_literal_hosts_or_keys() -> None:
    text = WORKFLOW.read_text()
    assert "PRIVATE KEY" not in text
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text)  # no IP addresses
    assert "@" not in re.sub(r"uses: \S+", "", text).replace("$DEPLOY_USER@$DEPLOY_HOST", "")


def test_actions_are_pinned(workflow: dict[Any, Any]) -> None:
    uses = [
        step["uses"] for job in _jobs(workflow).values() for step in _steps(job) if "uses" in step
    ]
    assert uses
    for action in uses:
        assert PINNED.match(action), f"{action} is not pinned to a version"
    for job in _jobs(workflow).values():
        for service in job.get("services", {}).values():
            assert not service["image"].endswith(":latest") and ":" in service["image"]
