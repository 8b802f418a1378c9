"""The uploads' disk full: a small tmpfs mounted over the private media directory and filled."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from pathlib import Path

from faults.load import OpenLoopLoad
from faults.report import ScenarioResult, Target
from faults.scenarios.common import no_failures_target, under_load
from faults.stack import CUSTOMER_PASSWORD, STAFF_USERNAME, FaultStack
from harness import Client

CSV = "sku,name,category,price,stock\nFAULT-1,Fault Lamp,{category},19.90,5\n"
TMPFS_SIZE = "1m"


def _staff(stack: FaultStack) -> Client:
    client = Client(stack.url, headers={"Host": "localhost"}, origin="http://localhost")
    status, _, _ = client.form_post(
        "/accounts/login/", {"username": STAFF_USERNAME, "password": CUSTOMER_PASSWORD}
    )
    if status != 302:
        raise RuntimeError(f"staff login answered {status}")
    return client


def _upload(client: Client, content: str) -> tuple[int, str]:
    """POST the import form with a CSV file (multipart, as a browser sends it)."""
    _, _, page = client.request("GET", "/staff/products/import/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    boundary = "faultsboundary7MA4YWxkTrZu0gW"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
        f"{token.group(1).decode() if token else ''}\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="products.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        f"{content}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    status, _, answer = client.request(
        "POST",
        "/staff/products/import/",
        body=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Origin": "http://localhost",
            "Referer": "http://localhost/staff/products/import/",
        },
    )
    return status, answer.decode(errors="replace")


def _fill(directory: Path) -> int:
    """Write into `directory` until the disk refuses; returns the bytes written."""
    written = 0
    with contextlib.suppress(OSError), (directory / "filler.bin").open("wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()
            written += 65536
    return written


def full(stack: FaultStack, result: ScenarioResult) -> None:
    """A 1 MB tmpfs mounted over the private media directory (where uploads are stored) and
    filled to the last byte, under 200 req/s of browsing. Staff upload a product CSV: it must be
    refused with a message (the form again, 507), nothing half-stored; every page still served.
    Then the disk is freed and the same upload must go through."""
    private = Path(stack.env["PRIVATE_MEDIA_ROOT"])
    private.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise RuntimeError("mounting a tmpfs needs root")
    category = (
        stack.command(
            "shell",
            "-c",
            "from storefront.catalog.models import Category; print(Category.objects.first().slug)",
        )
        .strip()
        .splitlines()[-1]
    )
    client = _staff(stack)
    outcome: dict = {}
    mounted = False
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(private)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"mount tmpfs failed: {done.stderr.strip()}")
        mounted = True

        def fault(load: OpenLoopLoad) -> dict:
            filled = _fill(private)
            time.sleep(1)
            outcome["refused"] = _upload(client, CSV.format(category=category))
            time.sleep(3)
            files = sorted(p.name for p in private.rglob("*") if p.is_file())
            return {"disk": f"tmpfs {TMPFS_SIZE}, {filled // 1024} KB written until full",
                    "files on it after the upload": files}  # fmt: skip

        run = under_load(stack, fault)
    finally:
        if mounted:
            subprocess.run(["umount", str(private)], check=False, capture_output=True)
    result.phases = run.phases
    result.facts.update(run.fault_facts)
    status, page = outcome.get("refused", (0, ""))
    result.facts["upload on the full disk answered"] = status
    result.add(Target.equal("upload refused (507, the form again)", status, 507))
    result.add(
        Target.true(
            "with a message", "no room to store this file" in page, "“no room to store this file”"
        )
    )
    result.add(
        Target.equal(
            "nothing half-stored",
            run.fault_facts.get("files on it after the upload"),
            ["filler.bin"],
        )
    )
    no_failures_target(result, run, "pages not served meanwhile")
    status, _ = _upload(client, CSV.format(category=category))
    result.facts["the same upload with room again answered"] = status
    result.add(Target.equal("upload works once there is room", status, 302))
