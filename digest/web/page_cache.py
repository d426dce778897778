"""Rendered public pages kept in memory, and the HTTP caching of them.

`PageCache` holds values by key, at most `max_bytes` of them in all, dropping the least
recently used first; a key names the data a page shows (see `digest.web.papers`), so an
entry is never stale, only unused. `get_or_make` makes a missing value once however many
threads ask for it at the same moment: after new papers arrive, the first request
renders the page and the others wait for it rather than all rendering it.

`page_response` answers with a `Page`: a strong ETag (a hash of the bytes, so that every
worker process gives the same page the same tag), public caching for a minute, and 304
to a client that already has those bytes.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from flask import request
from werkzeug.wrappers import Response

# Shared caches and browsers may keep a page this long without asking again: short, since
# upvotes move during the day; the ETag makes asking again cheap.
MAX_AGE = 60
# What an entry costs beyond its bytes (key, tuple, dictionary slot), roughly.
ENTRY_OVERHEAD = 200


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered page: its bytes, their media type and their ETag."""

    body: bytes
    mimetype: str
    etag: str

    @classmethod
    def of(cls, body: bytes, mimetype: str) -> Page:
        """A page of `body`, tagged with a hash of it."""
        digest = hashlib.sha256(body).digest()[:16]
        return cls(body, mimetype, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("="))

    @property
    def size(self) -> int:
        """What keeping the page costs, roughly, in bytes."""
        return len(self.body) + ENTRY_OVERHEAD


class PageCache:
    """Values by key, least recently used dropped first, `max_bytes` in all (0: keep none)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._making: dict[Hashable, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The size of what is kept, as `put` counted it."""
        return self._bytes

    def get(self, key: Hashable) -> Any | None:
        """The value kept for `key`, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep `value` under `key`; `size` is what it costs. Too big a value is not kept."""
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def get_or_make(
        self, key: Hashable, make: Callable[[], Any], size: Callable[[Any], int]
    ) -> Any:
        """The value kept for `key`, else `make()`'s, kept; made once for concurrent askers."""
        if self.max_bytes <= 0:
            return make()
        found = self.get(key)
        if found is not None:
            return found
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        with making:
            found = self.get(key)  # made by the thread this one waited for
            if found is not None:
                return found
            try:
                value = make()
                self.put(key, value, size(value))
            finally:
                with self._lock:
                    self._making.pop(key, None)
        return value


def page_response(page: Page, max_age: int = MAX_AGE) -> Response:
    """`page` as a public, cacheable response; 304 when the request already has it.

    Werkzeug compares If-None-Match with the ETag (and answers HEAD without the body).
    """
    response = Response(page.body, mimetype=page.mimetype)
    response.set_etag(page.etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response.make_conditional(request)
