"""A real SMTP server (aiosmtpd) on a free loopback port that keeps what it receives.

`hold()` makes it keep the client waiting after the message data, before answering (the client
is then inside its SMTP transaction, the message not yet accepted), until `release()`; a test
can kill the sender meanwhile. A held message whose client went away is dropped, never accepted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from harness.processes import HOST, free_port


@dataclass
class SmtpSink:
    host: str = HOST
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Set = answer DATA at once; cleared by hold(). _holding is set while a DATA waits.
    _open: threading.Event = field(default_factory=threading.Event)
    _holding: threading.Event = field(default_factory=threading.Event)
    dropped: int = 0  # held messages whose client went away (never accepted)

    def __post_init__(self) -> None:
        self._open.set()

    @property
    def url(self) -> str:
        """The EMAIL_URL that sends here (settings.py reads it with django-environ)."""
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        if not self._open.is_set():
            self._holding.set()
            try:
                while not self._open.is_set():
                    await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                # aiosmtpd cancels the handler when the client's connection ends (EOF, reset):
                # the client was killed before the server said 250, so the message is not kept.
                with self._lock:
                    self.dropped += 1
                raise
            # Same if the client's end closed but the handler was still running.
            reader = getattr(server, "_reader", None)
            if reader is not None and reader.at_eof():
                with self._lock:
                    self.dropped += 1
                return "451 4.3.0 Client went away"
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        """Wait until at least `count` messages arrived (or the timeout passed); return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received()) < count:
            time.sleep(0.05)
        return self.received()

    def hold(self) -> None:
        """Keep each following DATA unanswered (message not accepted) until release()."""
        self._holding.clear()
        self._open.clear()

    def wait_until_holding(self, timeout: float = 20.0) -> bool:
        """Whether a client is held in its DATA command within `timeout` seconds."""
        return self._holding.wait(timeout)

    def release(self) -> None:
        self._open.set()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


@contextmanager
def serving(sink: SmtpSink) -> Iterator[SmtpSink]:
    """Serve `sink` (an SmtpSink, or a subclass that answers differently) on its port."""
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextmanager
def running_smtp_sink() -> Iterator[SmtpSink]:
    # aiosmtpd connects to the port it was given to check the server started: no port 0.
    with serving(SmtpSink(port=free_port())) as sink:
        yield sink
