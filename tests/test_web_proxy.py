"""The web app served by real waitress (`digest.service._listen`) behind a reverse proxy.

The test plays the README's nginx: it connects from loopback and sends exactly what that
set-up sends (`Host $host`, `X-Forwarded-For $proxy_add_x_forwarded_for`,
`X-Forwarded-Proto $scheme`, and every header of the client's own passed on as it came).
What must hold: each client behind the proxy has its own rate-limit bucket whatever it
writes in its own X-Forwarded-For; HTTPS at the proxy means HSTS and https redirects; and
without `[web] trusted_proxies` no forwarded header changes anything.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from waitress import wasyncore

from digest.service import _listen
from tests.web_support import Site, csrf_token

PUBLIC = "https://digest.example.org"
PUBLIC_HOST = "digest.example.org"


@contextmanager
def served(site: Site) -> Iterator[httpx.Client]:
    """The site on real waitress (as `digest web` binds it) on a free loopback port."""
    assert site.settings.web.port == 0
    server = _listen(site.app, site.settings)
    stop = threading.Event()

    def serve() -> None:
        # waitress's own loop (`server.run()`) in short rounds, so that it ends when asked
        # and closes its sockets itself: no other thread ever touches them.
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        wasyncore.close_all(server._map)

    thread = threading.Thread(target=serve, name="waitress", daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.effective_port}"
        with httpx.Client(base_url=base, timeout=20.0) as http:
            yield http
    finally:
        server.task_dispatcher.shutdown()  # the requests in hand are answered by now
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


class Visitor:
    """One person's browser at `address`, reaching the app through the README's nginx
    (`proxied`) or straight (then the test is the client, on loopback)."""

    def __init__(self, http: httpx.Client, address: str, *, proxied: bool = True) -> None:
        self.http = http
        self.address = address
        self.proxied = proxied

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """What the app receives of this visitor's request: `headers` are the browser's."""
        sent = dict(headers or {})
        if self.proxied:
            sent = nginx(sent, self.address)
        return self.http.request(method, path, headers=sent, **kwargs)

    def sign_up(self, email: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """Load the form, then send it back with its CSRF token and session cookie."""
        page = self.request("GET", "/", headers)
        assert page.status_code == 200
        # The session cookie is Secure under an https base_url, which httpx would keep
        # from a plain-http URL: send it back by hand, as the browser does through TLS.
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        data = {
            "csrf_token": csrf_token(page.text),
            "email": email,
            "interests": "diffusion",
            "send_time": "08:00",
            "timezone": "UTC",
            "website": "",
        }
        # The browser sends our own page as Referer (Referrer-Policy same-origin), which
        # Flask-WTF requires over HTTPS.
        posted = {**(headers or {}), "Cookie": cookie, "Referer": f"{PUBLIC}/"}
        return self.request("POST", "/", posted, data=data)


def nginx(browser: dict[str, str], address: str) -> dict[str, str]:
    """The headers the README's nginx sends on for a browser at `address` over HTTPS."""
    sent = {**browser, "Host": PUBLIC_HOST, "X-Forwarded-Proto": "https"}
    own = browser.get("X-Forwarded-For")  # $proxy_add_x_forwarded_for appends the peer
    sent["X-Forwarded-For"] = f"{own}, {address}" if own else address
    return sent


def test_the_readme_nginx_block_is_the_one_this_test_plays() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for line in (
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "listen 443 ssl;",
        "proxy_pass http://127.0.0.1:8000;",
        "[web] trusted_proxies = 1",
    ):
        assert line in readme, line


def _behind_proxy(make_site: Any, **web: Any) -> Site:
    return make_site(
        web={"port": 0, "trusted_proxies": 1, "signup_limit": "2 per hour", **web},
        service={"base_url": PUBLIC},
    )


def test_each_client_behind_the_proxy_has_its_own_rate_limit(make_site: Any) -> None:
    site = _behind_proxy(make_site)
    with served(site) as http:
        clients = [Visitor(http, f"203.0.113.{n}") for n in (1, 2, 3)]
        for n, client in enumerate(clients):
            assert client.sign_up(f"a{n}@example.org").status_code == 303
            assert client.sign_up(f"b{n}@example.org").status_code == 303
        # Each has used its own two: the third of each is refused, and theirs alone.
        for n, client in enumerate(clients):
            assert client.sign_up(f"c{n}@example.org").status_code == 429
        # A client writing X-Forwarded-For itself is still where the proxy saw it.
        for spoofed in ("198.51.100.7", "198.51.100.8, 198.51.100.9", "unknown"):
            refused = clients[0].sign_up("d@example.org", {"X-Forwarded-For": spoofed})
            assert refused.status_code == 429, spoofed
        # A new client behind the proxy is not blocked by the others.
        assert Visitor(http, "2001:db8::5").sign_up("e@example.org").status_code == 303
    assert all(site.subscriber(f"{x}{n}@example.org") for x in "ab" for n in range(3))
    assert site.subscriber("c0@example.org") is None and site.subscriber("d@example.org") is None


def test_https_at_the_proxy_means_hsts_and_https_redirects(make_site: Any) -> None:
    site = _behind_proxy(make_site)
    with served(site) as http:
        visitor = Visitor(http, "203.0.113.1")
        page = visitor.request("GET", "/")
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        assert "Secure" in page.headers["set-cookie"]
        # The client's own X-Forwarded-Host goes through nginx unchanged: it must not
        # become the host the app answers as (the HTTPS Referer check, redirects).
        sent = visitor.sign_up("ada@example.org", {"X-Forwarded-Host": "evil.example"})
        assert sent.status_code == 303
        assert sent.headers["strict-transport-security"] == "max-age=31536000"
        target = urljoin(f"{PUBLIC}/", sent.headers["location"])
        assert target == f"{PUBLIC}/check-your-email"
    assert site.subscriber() is not None


def test_two_trusted_proxies_take_the_address_the_outer_one_saw(make_site: Any) -> None:
    # A CDN in front of nginx: X-Forwarded-For is "<client's own>, client, cdn".
    site = _behind_proxy(make_site, trusted_proxies=2)
    with served(site) as http:
        cdn = "192.0.2.50"
        for n, client in enumerate(("203.0.113.1", "203.0.113.2")):
            through = Visitor(http, cdn)
            chain = {"X-Forwarded-For": client}
            assert through.sign_up(f"a{n}@example.org", chain).status_code == 303
            assert through.sign_up(f"b{n}@example.org", chain).status_code == 303
            spoofed = {"X-Forwarded-For": f"198.51.100.{n}, {client}"}
            assert through.sign_up(f"c{n}@example.org", spoofed).status_code == 429


def test_without_trusted_proxies_forwarded_headers_change_nothing(make_site: Any) -> None:
    site = make_site(web={"port": 0, "signup_limit": "2 per hour"}, service={"base_url": PUBLIC})
    with served(site) as http:
        # Straight to the app, each request claiming another client and HTTPS.
        def claiming(n: int) -> dict[str, str]:
            return {
                "X-Forwarded-For": f"203.0.113.{n}",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil.example",
            }

        direct = Visitor(http, "127.0.0.1", proxied=False)
        page = direct.request("GET", "/", claiming(9))
        assert "strict-transport-security" not in page.headers
        assert direct.sign_up("a@example.org", claiming(1)).status_code == 303
        assert direct.sign_up("b@example.org", claiming(2)).status_code == 303
        assert direct.sign_up("c@example.org", claiming(3)).status_code == 429


def test_head_through_waitress_never_unsubscribes(make_site: Any) -> None:
    site = _behind_proxy(make_site)
    ada = site.add_reader("ada@example.org", "diffusion")
    path = f"/unsubscribe/{site.token('unsubscribe', ada)}"
    one_click = {"Content-Type": "application/x-www-form-urlencoded"}
    with served(site) as http:
        visitor = Visitor(http, "203.0.113.1")
        shown = visitor.request("GET", path)
        head = visitor.request("HEAD", path, one_click, content=b"List-Unsubscribe=One-Click")
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == shown.headers["content-length"]
        assert site.subscriber().status == "active"  # type: ignore[union-attr]
        # The real one-click POST still works.
        done = visitor.request("POST", path, one_click, content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200
    assert site.subscriber().status == "unsubscribed"  # type: ignore[union-attr]


@pytest.mark.parametrize("proto", ["https, http", "ftp"])
def test_only_https_as_the_last_proxy_saw_it_is_https(make_site: Any, proto: str) -> None:
    site = _behind_proxy(make_site)
    with served(site) as http:
        page = http.get("/", headers={"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": proto})
        assert page.status_code == 200
        assert "strict-transport-security" not in page.headers


def test_a_body_larger_than_any_form_is_refused_before_it_is_read(make_site: Any) -> None:
    # Waitress took bodies up to 1 GB (spooled to disk) and only then let the app say 413;
    # now it answers at once from the declared length, reading nothing.
    site = make_site(web={"port": 0})
    with served(site) as http:
        host, port = http.base_url.host, http.base_url.port
        with socket.create_connection((host, port), timeout=10) as raw:
            raw.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                b"\r\nContent-Length: 999999999\r\n\r\n"
            )
            answer = raw.recv(4096)  # old code: no answer, waiting for the body (timeout)
    assert answer.startswith(b"HTTP/1.1 413")
