"""Log in and out of the web UI: ``GET|POST /login`` and ``POST /logout`` (both POSTs need the CSRF token).

The token check and the session cookie are :class:`dashcam.web.security.Guard`'s; the app's
middleware (:func:`dashcam.web.app.create_app`) sends a visitor without a session here. Without
an access token (``web_token`` unset) the routes just redirect.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashcam.web.security import SESSION_COOKIE, SESSION_MAX_AGE_S, Guard, check_csrf

Page = Callable[..., Response]


def _safe_next(nxt: str | None) -> str:
    if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return "/"
    return nxt


def register(app: FastAPI, page: Page, guard: Guard) -> None:
    """Add the login routes to ``app``: ``page(request, template, status=200, **ctx)`` renders a template,
    ``guard`` checks the token and makes sessions."""

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None):
        return page(request, "login.html", title="Log in", next=_safe_next(next), error=None)

    @app.post("/login", dependencies=[Depends(check_csrf)])
    def login(request: Request, token: str = Form(""), next: str = Form("/")):
        if not guard.enabled:
            return RedirectResponse(_safe_next(next), status_code=303)
        if not guard.token_ok(token):
            return page(
                request,
                "login.html",
                status=401,
                title="Log in",
                next=_safe_next(next),
                error="That token is not right.",
            )
        resp = RedirectResponse(_safe_next(next), status_code=303)
        resp.set_cookie(SESSION_COOKIE, guard.new_session(), httponly=True, samesite="lax", max_age=SESSION_MAX_AGE_S)
        return resp

    @app.post("/logout", dependencies=[Depends(check_csrf)])
    def logout():
        resp = RedirectResponse("/login" if guard.enabled else "/", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp
