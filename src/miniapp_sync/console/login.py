"""Log in (a token for a session cookie) and out."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import COOKIE, SESSION_TTL
from miniapp_sync.console.site import PREFIX, Console, FormError, first, read_form, secured

log = logging.getLogger("miniapp_sync.console")


def _next(target: str | None) -> str:
    """Return where to go after the login: a console page, never another site (no open redirect)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


def routes(console: Console) -> list[BaseRoute]:
    """Return the login and logout routes."""
    gate = console.gate

    async def login_form(request: Request) -> Response:
        if gate.session(request.cookies.get(COOKIE)) is not None:
            return secured(RedirectResponse(_next(request.query_params.get("next")), 303))
        return _form(request, message=None, status=200)

    def _form(request: Request, *, message: str | None, status: int) -> Response:
        return console.render(
            request, "login.html", None, status,
            form_token=gate.login_form_token(), next=_next(request.query_params.get("next")), message=message,
        )  # fmt: skip

    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "-"
        if gate.throttled(client):
            log.warning("console login refused: too many wrong tokens", extra={"client": client})
            return _form(request, message="Too many wrong tokens: wait a few minutes, then try again.", status=429)
        try:
            form = await read_form(request)
        except FormError as exc:
            return _form(request, message=f"The form could not be read: {exc}.", status=400)
        if not gate.check_login_form(first(form, "form")):
            return _form(request, message="The login form had expired: try again.", status=403)
        cookie = gate.login(first(form, "token") or "", client)
        if cookie is None:
            # Who knocked, not what they sent: a mistyped token may be close to the real one.
            log.warning("console login refused: wrong token", extra={"client": client})
            return _form(request, message="That token is not the admin or the viewer token.", status=401)
        log.info("console login", extra={"client": client})
        response = RedirectResponse(_next(first(form, "next")), 303)
        response.set_cookie(
            COOKIE, cookie, max_age=SESSION_TTL, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return secured(response)

    async def logout(request: Request) -> Response:
        # Any role may log out, but only from a console page: the session's CSRF token is required.
        session = gate.session(request.cookies.get(COOKIE))
        try:
            form = await read_form(request)
        except FormError as exc:
            return console.refuse(request, session, f"The form could not be read: {exc}.", 400)
        if session is None or not session.check_csrf(first(form, "csrf")):
            return console.refuse(request, session, "The form is missing its security token: reload the page.")
        gate.end(session)
        response = RedirectResponse(f"{PREFIX}/login", 303)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return secured(response)

    return [
        Route(f"{PREFIX}/login", login_form, methods=["GET"]),
        Route(f"{PREFIX}/login", login, methods=["POST"]),
        Route(f"{PREFIX}/logout", logout, methods=["POST"]),
    ]
