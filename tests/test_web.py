"""The web app as a whole: the factory, security headers on every page, /healthz, and
the error pages (never a traceback)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from limits.storage import MemoryStorage, RedisStorage
from sqlalchemy import select

from digest.errors import ConfigError
from digest.store import Database
from digest.store.models import OutboxRow, SubscriberRow
from digest.store.subscribers import create_subscriber
from digest.tokens import SECRET_FILE, make_token
from digest.web import CONTENT_SECURITY_POLICY, create_app
from tests.smtp_server import free_port
from tests.web_support import NOW, SECRET, Clock, Site, csrf_token

# --- the factory --------------------------------------------------------------------


def test_each_app_is_independent(make_site: Any) -> None:
    one = make_site(web={"signup_limit": "1 per hour"})
    other = make_site(web={"signup_limit": "1 per hour"})
    assert one.app is not other.app
    assert one.signup("ada@example.org").status_code == 303
    assert one.signup("bob@example.org").status_code == 429
    # The other app counts its own sign-ups (its own limiter, CSRF and store objects).
    assert other.signup("carol@example.org").status_code == 303


def test_a_secret_is_generated_once_and_kept(make_settings: Any) -> None:
    settings = make_settings()
    assert not settings.web.secret_key
    first = create_app(settings)
    secret = first.extensions["digest"].secret
    assert (settings.data_dir / SECRET_FILE).read_text().strip() == secret
    # After a restart the same secret signs and reads links.
    again = create_app(settings)
    assert again.config["SECRET_KEY"] == secret
    with first.extensions["digest"].database.session() as session:
        ada = create_subscriber(
            session, "ada@example.org", "diffusion", send_time="08:00", timezone="UTC", now=NOW
        )
    token = make_token(secret, "unsubscribe", ada.id, ada.email)
    page = again.test_client().get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "ada@example.org" in page.get_data(as_text=True)
    for app in (first, again):
        app.extensions["digest"].database.dispose()


def test_the_rate_limit_storage_uri_is_handed_to_the_limiter(make_site: Any) -> None:
    port = free_port()  # nothing listens there: no Redis server is needed
    site = make_site(
        web={"ratelimit_storage": f"redis://127.0.0.1:{port}/3", "signup_limit": "2 per hour"}
    )
    (limiter,) = site.app.extensions["limiter"]
    assert isinstance(limiter.storage, RedisStorage)
    pool = limiter.storage.storage.connection_pool.connection_kwargs
    assert (pool["host"], pool["port"], pool["db"]) == ("127.0.0.1", port, 3)
    # Redis unreachable: sign-ups still work and are still limited, counted in memory.
    assert site.signup("ada@example.org").status_code == 303
    assert site.signup("bob@example.org").status_code == 303
    assert site.signup("carol@example.org").status_code == 429
    assert site.subscriber("carol@example.org") is None


def test_memory_is_the_default_rate_limit_storage(site: Site) -> None:
    (limiter,) = site.app.extensions["limiter"]
    assert isinstance(limiter.storage, MemoryStorage)


def test_redis_storage_without_the_redis_package_is_a_config_error(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    settings = make_settings(web={"ratelimit_storage": "redis://127.0.0.1:6379"})
    with pytest.raises(ConfigError, match=r"ratelimit_storage .*pip install 'digest\[redis\]'"):
        create_app(settings, database=Database("sqlite://"))


# --- security headers ---------------------------------------------------------------


def _pages(site: Site) -> dict[str, Any]:
    """One request of every kind the app answers, with the status it must get."""
    ada = site.add_reader("ada@example.org", "diffusion")
    pending = site.add_reader("bob@example.org", "rlhf", status="pending")
    return {
        "/": 200,
        "/check-your-email": 200,
        "/healthz": 200,
        f"/confirm/{site.token('confirm', pending)}": 200,
        f"/manage/{site.token('manage', ada)}": 200,
        f"/manage/{site.token('manage', ada)}?sample=1": 200,
        f"/unsubscribe/{site.token('unsubscribe', ada)}": 200,
        # The paper is not stored: a page saying so (test_web_feedback shows the others).
        f"/feedback/{site.token('feedback', ada)}/more/2606.00467": 404,
        "/confirm/not-a-token": 400,
        "/no-such-page": 404,
        f"/resubscribe/{site.token('unsubscribe', ada)}": 405,
        "/static/style.css": 200,
        "/static/timezone.js": 200,
    }


def test_security_headers_on_every_page(site: Site) -> None:
    for path, status in _pages(site).items():
        response = site.get(path)
        assert response.status_code == status, path
        headers = response.headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert "Strict-Transport-Security" not in headers  # plain http here
        if not path.startswith("/static/"):
            assert headers["Cache-Control"] == "no-store", path


def test_the_policy_allows_no_inline_script_and_no_framing(site: Site) -> None:
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"


class _InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        self.found += [f"{name}= on <{tag}>" for name in names if name.startswith("on")]
        if "style" in names:
            self.found.append(f"style= on <{tag}>")


def test_pages_carry_nothing_the_policy_would_block(site: Site) -> None:
    for path in _pages(site):
        response = site.get(path)
        if response.mimetype != "text/html":
            continue
        parser = _InlineCode()
        parser.feed(response.get_data(as_text=True))
        assert parser.found == [], path


def test_https_requests_get_hsts_and_their_forms_still_work(make_site: Any) -> None:
    site = make_site(service={"base_url": "https://digest.test"})
    secure = {"base_url": "https://digest.test"}
    page = site.get("/", **secure)
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Secure" in page.headers["Set-Cookie"]
    # Over HTTPS Flask-WTF also wants the Referer of our own page, which the browser
    # sends under our Referrer-Policy (same-origin).
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "email": "ada@example.org",
        "interests": "diffusion",
        "send_time": "08:00",
        "timezone": "UTC",
    }
    sent = site.client.post("/", data=data, headers={"Referer": "https://digest.test/"}, **secure)
    assert sent.status_code == 303
    assert site.subscriber() is not None


# --- health -------------------------------------------------------------------------


def test_healthz_reports_the_database(site: Site) -> None:
    response = site.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def test_healthz_says_when_the_database_is_unreachable(make_settings: Any, tmp_path: Any) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "digest.db"
    app = create_app(
        make_settings(web={"secret_key": SECRET}), database=Database(f"sqlite:///{missing}")
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "error", "database": "unreachable"}


# --- error pages --------------------------------------------------------------------


def test_not_found_is_a_page_of_ours(site: Site) -> None:
    response = site.get("/wp-login.php")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "404 Not Found" in body and "Back to the home page" in body


def test_a_failure_inside_shows_a_plain_page_never_a_traceback(
    make_settings: Any, tmp_path: Any
) -> None:
    missing = tmp_path / "gone" / "digest.db"
    app = create_app(
        make_settings(web={"secret_key": SECRET}), database=Database(f"sqlite:///{missing}")
    )
    client = app.test_client()
    token = csrf_token(client.get("/").get_data(as_text=True))
    data = {
        "csrf_token": token,
        "email": "ada@example.org",
        "interests": "diffusion",
        "send_time": "08:00",
        "timezone": "UTC",
    }
    response = client.post("/", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "500 Internal Server Error" in body
    assert "Traceback" not in body and "sqlite" not in body.lower()
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_an_oversized_request_is_refused(site: Site) -> None:
    response = site.submit("/", {"interests": "x" * 100_000})
    assert response.status_code == 413
    assert "Request Entity Too Large" in response.get_data(as_text=True)


@pytest.mark.parametrize("token", ["", "forged-token-value"])
def test_a_missing_or_forged_csrf_token_is_refused_with_a_page(site: Site, token: str) -> None:
    site.get("/")  # a session exists, with its own token
    data = {"email": "ada@example.org", "interests": "diffusion", "send_time": "08:00"}
    if token:
        data["csrf_token"] = token
    response = site.client.post("/", data={**data, "timezone": "UTC"})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert site.subscriber() is None and site.outbox() == []


def test_a_token_from_another_session_is_refused(site: Site) -> None:
    # A forged request from another site carries a token of the attacker's own session.
    other = site.app.test_client()
    stolen = csrf_token(other.get("/").get_data(as_text=True))
    site.get("/")
    data = {
        "csrf_token": stolen,
        "email": "ada@example.org",
        "interests": "diffusion",
        "send_time": "08:00",
        "timezone": "UTC",
    }
    response = site.client.post("/", data=data)
    assert response.status_code == 400
    assert site.subscriber() is None


def test_every_form_refuses_a_missing_or_forged_token(site: Site) -> None:
    pages = [path for path in _pages(site) if "not-a-token" not in path and "?" not in path]
    confirm, manage, unsubscribe = (
        next(path for path in pages if path.startswith(f"/{kind}/"))
        for kind in ("confirm", "manage", "unsubscribe")
    )
    with site.database.session() as session:
        before = {row.email: row.status for row in session.query(SubscriberRow)}
    forms = [
        ("/", {"email": "eve@example.org", "interests": "x", "send_time": "08:00"}),
        (confirm, {}),
        (manage, {"interests": "agents", "send_time": "09:00", "timezone": "UTC"}),
        (f"{manage}/pause", {}),
        (unsubscribe, {}),
        (unsubscribe.replace("/unsubscribe/", "/resubscribe/"), {}),
    ]
    for path, data in forms:
        site.get(path if "/resubscribe/" not in path and "/pause" not in path else manage)
        for token in ({}, {"csrf_token": "forged"}):
            response = site.client.post(path, data={**data, **token})
            assert response.status_code == 400, path
            assert "ada@example.org" not in response.get_data(as_text=True) or (
                "/unsubscribe/" in path  # its own page again, with a fresh button
            ), path
    with site.database.session() as session:
        after = {row.email: row.status for row in session.query(SubscriberRow)}
        interests = [row.interests for row in session.query(SubscriberRow)]
    assert after == before and "agents" not in interests


# --- HEAD is GET without the body, and changes nothing ----------------------------------


def _state(site: Site) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every subscriber row and every outbox row, as stored."""
    with site.database.session() as session:
        subscribers = [tuple(row) for row in session.execute(select(SubscriberRow.__table__))]
        outbox = [tuple(row) for row in session.execute(select(OutboxRow.__table__))]
    return subscribers, outbox


def _route_paths(site: Site) -> list[str]:
    """One concrete path for every rule of the app, with links that work."""
    ada = site.add_reader("ada@example.org", "diffusion")
    bob = site.add_reader("bob@example.org", "rlhf", status="pending")
    tokens = {
        "subscribe.confirm": site.token("confirm", bob),
        "manage.unsubscribe": site.token("unsubscribe", ada),
        "manage.resubscribe": site.token("unsubscribe", ada),
        "feedback.feedback": site.token("feedback", ada),
    }
    paths = []
    for rule in site.app.url_map.iter_rules():
        values = {
            "token": tokens.get(rule.endpoint, site.token("manage", ada)),
            "action": "pause",
            "filename": "style.css",
            "day": "2026-06-12",
            "vote": "more",
            "paper_id": "2606.00467",
            "vote_id": 1,
        }
        unknown = rule.arguments - values.keys()
        assert not unknown, f"{rule.rule}: give this test a value for {unknown}"
        paths.append(rule.build({name: values[name] for name in rule.arguments})[1])
    return paths


def test_head_is_get_without_a_body_on_every_route_and_changes_nothing(site: Site) -> None:
    paths = _route_paths(site)
    assert len(paths) == len(list(site.app.url_map.iter_rules()))
    page = site.get("/").get_data(as_text=True)
    # Everything a POST to any of them could want: a valid CSRF token of this session,
    # a complete sign-up or manage form, and RFC 8058's one-click body.
    body = {
        "csrf_token": csrf_token(page),
        "email": "eve@example.org",
        "interests": "agents",
        "send_time": "09:00",
        "timezone": "UTC",
        "List-Unsubscribe": "One-Click",
    }
    before = _state(site)
    for path in paths:
        shown = site.get(path)
        for data in (None, body, {"List-Unsubscribe": "One-Click"}):
            head = site.client.head(path, data=data)
            assert head.status_code == shown.status_code, (path, data)
            assert head.get_data() == b"", path
            assert head.headers.get("Content-Type") == shown.headers.get("Content-Type"), path
        assert _state(site) == before, path
    assert site.subscriber().status == "active"  # type: ignore[union-attr]
    assert site.subscriber("eve@example.org") is None and site.outbox() == []


# --- links naming an id no subscriber can have -----------------------------------------


@pytest.fixture
def backend_site(make_settings: Any, store_database: Database) -> Iterator[Site]:
    """The app on each database backend (SQLite and PostgreSQL)."""
    settings = make_settings(web={"secret_key": SECRET}, service={"base_url": "http://digest.test"})
    clock = Clock()
    app = create_app(settings, database=store_database, clock=clock)
    yield Site(app, settings, store_database, clock)
    app.extensions["digest"].courier.stop()  # the store fixture disposes of the database


@pytest.mark.parametrize("subscriber_id", [2**70, 2**40, 2**31, 0, -1, -(2**70)])
def test_a_signed_link_naming_an_impossible_id_is_an_invalid_link(
    backend_site: Site, subscriber_id: int
) -> None:
    def link(purpose: str) -> str:
        return make_token(SECRET, purpose, subscriber_id, "ada@example.org")

    for path in (
        f"/confirm/{link('confirm')}",
        f"/manage/{link('manage')}",
        f"/manage/{link('manage')}/sample",
        f"/unsubscribe/{link('unsubscribe')}",
        f"/feedback/{link('feedback')}/more/2606.00467",
    ):
        response = backend_site.get(path)
        assert response.status_code == 400, path
        assert "not valid" in response.get_data(as_text=True), path
    one_click = backend_site.client.post(
        f"/unsubscribe/{link('unsubscribe')}", data={"List-Unsubscribe": "One-Click"}
    )
    assert one_click.status_code == 400


# --- control characters in interests ----------------------------------------------------


@pytest.mark.parametrize("bad", ["diffusion\x00", "diffusion\x1b[2J", "agents\n\x07rlhf"])
def test_the_forms_refuse_control_characters_in_interests(backend_site: Site, bad: str) -> None:
    refused = backend_site.signup(interests=bad)
    assert refused.status_code == 400
    assert "invisible control character" in refused.get_data(as_text=True)
    assert backend_site.subscriber() is None and backend_site.outbox() == []
    ada = backend_site.add_reader("ada@example.org", "diffusion")
    manage = f"/manage/{backend_site.token('manage', ada)}"
    data = {"interests": bad, "send_time": "09:00", "timezone": "UTC"}
    refused = backend_site.submit(manage, data)
    assert refused.status_code == 400
    assert "invisible control character" in refused.get_data(as_text=True)
    assert backend_site.subscriber().interests == "diffusion"  # type: ignore[union-attr]


@pytest.mark.parametrize("field", ["email", "interests", "send_time", "timezone"])
def test_a_field_sent_as_a_file_is_refused_not_a_crash(site: Site, field: str) -> None:
    # Flask-WTF would read uploaded files (and JSON) as field values: a file object where
    # text belongs broke the validators, a 500 anyone could cause.
    token = csrf_token(site.get("/").get_data(as_text=True))
    data: dict[str, Any] = {
        "csrf_token": token,
        "email": "ada@example.org",
        "interests": "diffusion",
        "send_time": "08:00",
        "timezone": "UTC",
        field: (io.BytesIO(b"not text"), "f.txt"),
    }
    answer = site.client.post("/", data=data, content_type="multipart/form-data")
    assert answer.status_code == 400  # the form again, saying what is missing
    assert 'name="interests"' in answer.get_data(as_text=True)
    assert site.subscriber() is None and site.outbox() == []


@pytest.mark.parametrize("body", [{"interests": 5}, {"email": {}}, {"send_time": 800}, [1, 2]])
def test_a_json_body_is_no_form(site: Site, body: Any) -> None:
    token = csrf_token(site.get("/").get_data(as_text=True))
    answer = site.client.post("/", json=body, headers={"X-CSRFToken": token})
    assert answer.status_code in (200, 400)
    assert site.subscriber() is None and site.outbox() == []


def test_a_wrong_method_says_which_are_allowed(site: Site) -> None:
    answer = site.client.put("/")
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].split(", ")) >= {"GET", "HEAD", "POST"}
