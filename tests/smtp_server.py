"""A real SMTP server for tests (aiosmtpd): the `smtp_server` fixture (see tests/conftest.py)
starts servers that keep what they accept."""

from __future__ import annotations

import asyncio
import email
import socket
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: bytes | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)  # type: ignore


@dataclass
class Inbox:
    """aiosmtpd handler keeping what it accepts; `delay` holds the reply to DATA back."""

    reply: str = "250 Message accepted for delivery"
    delay: float = 0.0
    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.reply.startswith("250"):  # taken: queued for delivery
            auth = getattr(session, "auth_data", None)
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content,
                                          getattr(auth, "login", None)))
        if self.delay:  # ... but the answer comes late
            await asyncio.sleep(self.delay)
        return self.reply


@dataclass
class Server:
    port: int
    inbox: Inbox
    controller: Controller

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def smtp_server():
    """Factory: start a real SMTP server (aiosmtpd) on `port` (default: a free one)."""
    started: list[Controller] = []

    def start(port: int | None = None, inbox: Inbox | None = None, **kwargs) -> Server:
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        inbox = inbox or Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return Server(port, inbox, controller)

    yield start
    for controller in started:
        controller.stop()
