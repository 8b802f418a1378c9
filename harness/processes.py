"""Processes of our own: free ports, bounded waits, and a registry that stops them all.

Every server the harness starts runs in its own process group (`start_new_session`), so that
stopping it reaches its children too (gunicorn's and nginx's workers, a script's whole tree).
`PROCESSES` remembers each one; `stop_all()` ends those still running, and `install()` makes
that happen at exit, on SIGTERM and on SIGHUP as well (Ctrl-C unwinds the callers'
try/finally blocks, atexit backs them up).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOST = "127.0.0.1"


class Unavailable(Exception):
    """A binary or service the harness needs is missing: tests skip (or fail when services
    are required), scripts stop with the message."""


def log(message: str) -> None:
    """A timestamped progress line on stderr (the scripts' output)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def require_binary(name: str, package: str) -> str:
    """The path of executable `name`; `Unavailable` (naming the Debian package) when missing."""
    path = shutil.which(name)
    if path is None:
        raise Unavailable(f"{name} not installed (apt-get install {package})")
    return path


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def run(
    args: list[str], *, timeout: float, env: dict[str, str] | None = None, **options: object
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, output captured as text, never raising on its
    exit status (the caller judges it); a bounded wait."""
    return subprocess.run(
        args,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,  # type: ignore[arg-type]
    )


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file ("" when there is none yet)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Processes:
    """Every process group we started; `stop_all` ends the ones still running."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []
        self._leaders: set[int] = set()  # pids of the groups we created
        self._installed = False

    def install(self) -> None:
        """Stop everything at exit, on SIGTERM and on SIGHUP (the scripts call this once)."""
        if self._installed:
            return
        self._installed = True
        atexit.register(self.stop_all)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop_all()
        raise SystemExit(128 + signum)

    def spawn(
        self, args: list[str], *, env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT
    ) -> subprocess.Popen:
        """Start `args` in a process group of its own, output appended to `log_path`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: killpg reaches its children
            )
        self.adopt(proc)
        return proc

    def adopt(self, proc: subprocess.Popen) -> None:
        """Register a process started elsewhere with `start_new_session=True`."""
        self.running.append(proc)
        self._leaders.add(proc.pid)

    def forget(self, proc: subprocess.Popen) -> None:
        """Drop a process its owner stopped by other means (a Ctrl-C it wants to observe)."""
        self._leaders.discard(proc.pid)
        if proc in self.running:
            self.running.remove(proc)

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        """`sig` (gunicorn: SIGTERM, nginx: SIGQUIT), SIGKILL after `wait` seconds; then the
        stragglers of its group (workers whose master died first)."""
        group = proc.pid in self._leaders
        if proc.poll() is None:
            self._signal(proc, sig, group)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL, group)
                proc.wait(timeout=10)
        if group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.forget(proc)

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int, group: bool) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc, wait=5)


PROCESSES = Processes()


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 20) -> None:
    """Graceful stop with `sig`, then kill after a bounded wait (see `Processes.stop`)."""
    PROCESSES.stop(proc, sig, wait)


def wait_http(
    url: str,
    proc: subprocess.Popen,
    log_path: Path,
    timeout: float = 90,
    headers: dict[str, str] | None = None,
) -> None:
    """Wait until `url` answers (any status: the caller judges it), at most `timeout` seconds;
    RuntimeError with the log's end when `proc` exits first or time runs out."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - our loopback server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[:3]} exited with {proc.returncode} before serving:\n{tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s:\n{tail(log_path)}")
