"""The web entry point: signup, confirm, manage and unsubscribe pages, and the papers (Flask).

`create_app(settings)` builds an app; nothing exists at import time, so tests build as
many apps as they like. Five blueprints: `subscribe` (the signup form and confirmation),
`manage` (the manage and unsubscribe pages reached from links in emails), `feedback`
(the "more / less like this" links of digests), `papers` (the
day's papers, public and cached, and their feed) and `search` (stored papers searched
with the interest syntax). The app
holds one `WebContext` (settings, database, signing secret, clock, mailer) in
`app.extensions["digest"]`; views reach it through `context()`.

Safety: CSRF tokens on every form (Flask-WTF), rate limits per client and per address
(Flask-Limiter), a honeypot field, a strict Content-Security-Policy with no inline
script, and no page that tells whether an address is subscribed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from limits.errors import ConfigurationError as LimitsConfigurationError
from sqlalchemy import text
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from digest.config import Settings, load_settings
from digest.config.settings import METRICS_ON_WEB
from digest.errors import ConfigError
from digest.jobs.mail import Courier
from digest.metrics import Exporter, make_registry
from digest.paths import templates_dir
from digest.render import DigestRenderer
from digest.store import Database, open_database
from digest.subscriber import WEEKDAYS, Subscriber, cadence_weekday
from digest.tokens import secret_key

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# notify(subscriber, kind): queue and send a transactional email. kind is "confirm" (a
# new sign-up) or "manage" (someone signed up again with a known address). For "confirm"
# the subscriber holds the interests, time and zone the sign-up asked for (not always the
# stored ones): the email offers those, and its link applies them. Without a hook (the
# default), a sign-up queues its email in its own transaction and kicks the courier.
Notifier = Callable[[Subscriber, str], None]

# Accepted sign-ups (and honeypot catches) answer 303; only those count against the rate
# limits, so a person correcting a typo in the form is never locked out.
ACCEPTED = 303

# The largest request body a page sends (a sign-up with 2,000 characters of interests is
# under 4 KB); waitress refuses larger ones before reading them (digest.service).
MAX_BODY = 64 * 1024
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "script-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)


# Our own pages shown inside the manage page's sample frame (a sample refused for now):
# the frame may hold them, nothing else may.
FRAMED_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'", "frame-ancestors 'self'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
}


@dataclass
class WebContext:
    """What the views need: settings, store, secret, clock and the mail hook."""

    settings: Settings
    database: Database
    secret: str
    clock: Clock
    notify: Notifier | None = None
    courier: Courier | None = None
    _renderer: DigestRenderer | None = None
    # Pages the same for every visitor but for a slot, kept once written (see
    # `digest.web.subscribe._blank_signup_page`), by name.
    pages: dict[str, str] = field(default_factory=dict)

    @property
    def renderer(self) -> DigestRenderer:
        """One renderer for the app's lifetime (templates and CSS prepared once)."""
        if self._renderer is None:
            self._renderer = DigestRenderer(self.settings, self.secret)
        return self._renderer


def context() -> WebContext:
    """The current app's WebContext."""
    return current_app.extensions["digest"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
    notify: Notifier | None = None,
) -> Flask:
    """Build the web app on the given settings (default: loaded as the CLI would)."""
    settings = settings or load_settings()
    database = database or open_database(settings)
    clock = clock or _utc_now
    secret = secret_key(settings)
    app = Flask(
        __name__,
        template_folder=str(templates_dir() / "web"),
        static_folder=str(Path(__file__).with_name("static")),
    )
    app.config.update(
        SECRET_KEY=secret,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.service.base_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,  # a form left open for a day must still submit
        MAX_CONTENT_LENGTH=MAX_BODY,
    )
    app.extensions["digest"] = WebContext(
        settings=settings,
        database=database,
        secret=secret,
        clock=clock,
        notify=notify,
        courier=Courier(settings, database, clock),
    )
    if settings.web.trusted_proxies:
        # The client's address (rate limits) and scheme (HSTS, Flask-WTF's HTTPS Referer
        # check) from the last `hops` proxies; the server must pass these headers on
        # (digest.service._listen tells waitress to). Not X-Forwarded-Host: a proxy that
        # sets Host itself, as the README's nginx does, passes the client's own
        # X-Forwarded-Host through unchanged, so trusting it would let anyone pick the host.
        hops = settings.web.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)  # type: ignore[method-assign]
    _register_blueprints(app)
    if settings.web.metrics and settings.web.metrics_listen == METRICS_ON_WEB:
        _serve_metrics(app, settings, database, clock)
    _protect(app, settings)
    _register_handlers(app)
    return app


def _serve_metrics(app: Flask, settings: Settings, database: Database, clock: Clock) -> None:
    """/metrics on this app's own port: only when asked ([web] metrics_listen = "web")."""
    exporter = Exporter(make_registry(settings, database, clock))

    def metrics() -> Response:
        answer = exporter.answer()
        return Response(answer.body, answer.status, content_type=answer.content_type)

    app.add_url_rule("/metrics", "metrics", metrics)


def _address_key() -> str:
    """The per-address limit's key: the mailbox signed up for, however it was written."""
    from digest.web.forms import address_key

    return "address:" + address_key(request.form.get("email") or "")


def _accepted(response: Response) -> bool:
    return response.status_code == ACCEPTED


def _protect(app: Flask, settings: Settings) -> None:
    """CSRF on every form, rate limits on sign-ups and samples; one instance of each per app."""
    csrf = CSRFProtect(app)
    # RFC 8058 one-click unsubscribe comes without cookies or token; the view checks the
    # CSRF token itself for the page's own button (the signed link is the capability).
    csrf.exempt("digest.web.manage.unsubscribe")
    try:
        limiter = Limiter(
            key_func=get_remote_address,
            app=app,
            headers_enabled=True,
            storage_uri=settings.web.ratelimit_storage,
            # Shared storage down (Redis restarting): count in this process meanwhile
            # rather than refusing every sign-up or letting them all through.
            in_memory_fallback_enabled=True,
        )
    except LimitsConfigurationError as error:  # e.g. redis:// without the redis package
        raise ConfigError(
            f"[web] ratelimit_storage {settings.web.ratelimit_storage}: {error}; "
            "for Redis install the redis extra: pip install 'digest[redis]'"
        ) from None
    signup = app.view_functions["subscribe.signup"]
    signup = limiter.limit(settings.web.signup_limit, methods=["POST"], deduct_when=_accepted)(
        signup
    )
    signup = limiter.limit(
        settings.web.address_limit, methods=["POST"], key_func=_address_key, deduct_when=_accepted
    )(signup)
    app.view_functions["subscribe.signup"] = signup
    # A sample matches and renders a week of papers: cheap to ask for, not to make.
    sample = app.view_functions["manage.sample"]
    app.view_functions["manage.sample"] = limiter.limit(settings.web.sample_limit)(sample)
    # A vote or its undo fits the reader's model again: cheap, but not free.
    limit_votes = limiter.limit(settings.web.feedback_limit, methods=["POST"])
    for endpoint in ("feedback.feedback", "manage.undo_feedback"):
        app.view_functions[endpoint] = limit_votes(app.view_functions[endpoint])


def _register_blueprints(app: Flask) -> None:
    from digest.web.feedback import blueprint as feedback
    from digest.web.manage import blueprint as manage
    from digest.web.papers import blueprint as papers
    from digest.web.search import blueprint as search
    from digest.web.subscribe import blueprint as subscribe

    app.register_blueprint(subscribe)
    app.register_blueprint(manage)
    app.register_blueprint(feedback)
    app.register_blueprint(papers)
    app.register_blueprint(search)
    app.add_url_rule("/healthz", "healthz", healthz)
    # Browsers ask for /favicon.ico whatever the page says.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.svg"))


def healthz() -> tuple[dict[str, Any], int]:
    """Liveness and database reachability, for monitoring."""
    try:
        with context().database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure at all means unhealthy
        log.warning("health check: database unreachable: %s", error)
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}, 200


def local_time(instant: datetime | None, zone: str) -> str:
    """A send time as a person reads it in their zone: "Friday 12 June at 08:00"."""
    if instant is None:
        return ""
    local = instant.astimezone(ZoneInfo(zone))
    return f"{local:%A} {local.day} {local:%B} at {local:%H:%M}"


def often(cadence: str) -> str:
    """How often a cadence sends, to follow "one email": "a day", "every Monday"."""
    weekday = cadence_weekday(cadence)
    return "a day" if weekday is None else f"every {WEEKDAYS[weekday].capitalize()}"


def _register_handlers(app: Flask) -> None:
    app.after_request(_security_headers)
    app.context_processor(lambda: {"site_name": context().settings.mail.from_name})
    app.add_template_filter(local_time)
    app.add_template_filter(often)
    app.add_template_filter(lambda zone: zone.replace("_", " "), "zone")

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> tuple[str, int]:
        return render_template(
            "error.html",
            title="This form has expired",
            message="The form was too old or came from another site. Please go back, "
            "reload the page and send it again.",
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if error.code == 429 and request.endpoint == "subscribe.signup":
            from digest.web.subscribe import signup_rate_limited

            return signup_rate_limited()
        if error.code == 429 and request.endpoint == "manage.sample":
            page = render_template(
                "error.html",
                title="Too many samples",
                message="Your address has asked for many samples this hour. "
                "Please try again later.",
            )
            # Shown where the sample would be, in the manage page's frame: allow that.
            return page, 429, FRAMED_PAGE_HEADERS
        page = render_template(
            "error.html", title=f"{error.code} {error.name}", message=error.description
        )
        # Keep what the error itself says in headers (a 405's Allow), not its content type.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return page, error.code or 500, headers


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # Links carry tokens: never send the URL to another site. Our own forms do send it
    # back to us, which Flask-WTF requires over HTTPS (it checks the Referer's origin).
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint != "static":  # pages hold addresses and tokens: keep no copy
        headers.setdefault("Cache-Control", "no-store")
    return response
