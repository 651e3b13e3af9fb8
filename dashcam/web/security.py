"""Web UI security: access token login (signed cookie session), CSRF tokens, security headers.

* **Token**: when :attr:`Settings.web_token` is set, every page but ``/login`` and ``/static``
  needs a session cookie (``dashcam_session``, signed with itsdangerous, HMAC-SHA1 over a key
  derived from the token, valid ``SESSION_MAX_AGE_S``) or an ``Authorization: Bearer <token>``
  header (for scripts fetching exports). Changing the token ends every session.
* **CSRF** (double submit, signed): every response carries a random ``dashcam_csrf`` cookie;
  forms send :func:`csrf_token` as the ``csrf_token`` field; :func:`check_csrf` compares the
  two. Every write (login now, corrections next) is a POST that calls it.
* **Headers**: a CSP allowing only this origin, plus the map tile host for images.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "dashcam_session"
CSRF_COOKIE = "dashcam_csrf"
SESSION_MAX_AGE_S = 30 * 24 * 3600

__all__ = ["Guard", "check_csrf", "csrf_token", "is_loopback", "security_headers"]


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``; False for ``0.0.0.0``, LAN addresses, names."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    """Session signing for one app. ``token``: the access token or None (no login needed)."""

    def __init__(self, token: str | None):
        self.token = token or None
        key = hashlib.sha256(b"dashcam-web-session\0" + (token or secrets.token_hex(32)).encode()).hexdigest()
        self._session = URLSafeTimedSerializer(key, salt="session")
        self._csrf = URLSafeTimedSerializer(key, salt="csrf")

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def token_ok(self, given: str | None) -> bool:
        return self.token is not None and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def new_session(self) -> str:
        return self._session.dumps({"sid": secrets.token_hex(16)})

    def authenticated(self, request: Request) -> bool:
        if not self.enabled:
            return True
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self.token_ok(auth[7:].strip()):
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return False
        try:
            self._session.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return False
        return True

    def csrf_cookie_value(self) -> str:
        return secrets.token_urlsafe(24)

    def sign_csrf(self, raw: str) -> str:
        return self._csrf.dumps(raw)

    def csrf_matches(self, raw_cookie: str | None, form_value: str | None) -> bool:
        if not raw_cookie or not form_value:
            return False
        try:
            raw = self._csrf.loads(form_value, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return False
        return hmac.compare_digest(str(raw).encode(), raw_cookie.encode())


def csrf_token(request: Request) -> str:
    """The CSRF token for a form on this page (template global ``csrf_token(request)``)."""
    guard: Guard = request.app.state.guard
    return guard.sign_csrf(request.state.csrf_raw)


async def check_csrf(request: Request) -> None:
    """Raise 403 unless the POSTed ``csrf_token`` field matches this browser's CSRF cookie."""
    form = await request.form()
    guard: Guard = request.app.state.guard
    token = form.get("csrf_token")
    if not isinstance(token, str) or not guard.csrf_matches(
        request.cookies.get(CSRF_COOKIE), token
    ):  # a file upload is no token
        raise HTTPException(
            403, "The form expired or came from another site (CSRF check failed): reload the page and try again."
        )


def tile_origin(tile_url: str) -> str | None:
    """``https://tile.openstreetmap.org`` for a tile URL template; None when it is not absolute
    (``{s}`` subdomains become a wildcard)."""
    u = urlsplit(tile_url)
    if u.scheme not in ("http", "https") or not u.netloc:
        return None
    return f"{u.scheme}://{u.netloc.replace('{s}', '*')}"


def security_headers(tile_url: str) -> dict[str, str]:
    """Headers added to every response: CSP (self only, plus the tile host for images)."""
    tiles = tile_origin(tile_url)
    img = "'self' data: blob:" + (f" {tiles}" if tiles else "")
    csp = (
        f"default-src 'self'; img-src {img}; media-src 'self'; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; "
        "form-action 'self'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
