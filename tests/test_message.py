"""The message record is a core type: the store and the senders carry it without loading
the renderer or the matcher (Jinja, css-inline, NumPy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from digest.message import Message
from tests.messages import build_digest


def test_the_store_and_the_senders_load_without_render_or_match() -> None:
    probe = (
        "import sys, digest.send, digest.store, digest.store.outbox, digest.store.lock\n"
        "heavy = ('digest.render', 'digest.match', 'numpy', 'jinja2', 'css_inline')\n"
        "print(' '.join(name for name in heavy if name in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


def test_body_gives_each_part_with_plain_newlines() -> None:
    message = build_digest(7, "reader7@example.net")
    assert isinstance(message, Message)
    assert "\r\n" not in message.body("plain") and message.body("plain")
    assert message.body("html").startswith("<html><body><h1>Your paper digest")
    single = Message(message.sender, message.recipient, "<x@y>", b"Subject: x\r\n\r\nhello\r\n")
    with pytest.raises(ValueError, match="no html part"):
        single.body("html")
