"""The message record is a core type: the store and the senders carry it without loading
the renderer or the matcher (Jinja, css-inline, NumPy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from digest.message import Message
from tests.messages import build_digest


def test_the_store_and_the_senders_load_without_render_or_match() -> None:
    # Every module of both packages, in a fresh interpreter (this one has them all).
    probe = (
        "import importlib, pkgutil, sys\n"
        "import digest.send, digest.store\n"
        "for package in (digest.send, digest.store):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if '.migrations' not in module.name:\n"
        "            importlib.import_module(module.name)\n"
        "heavy = ('digest.render', 'digest.match', 'numpy', 'jinja2', 'css_inline')\n"
        "print(' '.join(name for name in heavy if name in sys.modules))\n"
        "print(len([name for name in sys.modules if name.startswith('digest.s')]))\n"
    )
    loaded, count = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split("\n")[:2]
    assert loaded == ""
    assert int(count) >= 12  # the probe did import them (store, send and their modules)


def test_body_gives_each_part_with_plain_newlines() -> None:
    message = build_digest(7, "reader7@example.net")
    assert isinstance(message, Message)
    assert "\r\n" not in message.body("plain") and message.body("plain")
    assert message.body("html").startswith("<html><body><h1>Your paper digest")
    single = Message(message.sender, message.recipient, "<x@y>", b"Subject: x\r\n\r\nhello\r\n")
    with pytest.raises(ValueError, match="no html part"):
        single.body("html")
