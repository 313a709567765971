"""Who is at the console: a token exchanged for a signed session cookie, a role, a CSRF token (D40).

The login compares the token given with the admin and the viewer token in constant time (both,
always), and a client that keeps guessing is turned away for a while. A session is a cookie
that itsdangerous signs with a key derived from the store's secret key (never the key itself):
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), scoped to
/console, and expiring. It holds the role, a per-session CSRF token that every POST must carry
back, and a fingerprint of the token it was opened with, so changing a token ends the sessions
it opened. Logging out ends the session in this process too (its cookie is remembered as ended
until it would have expired), not only in the browser that drops the cookie. A viewer sees
everything; every action refuses a viewer, whatever the page shows.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Literal

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from miniapp_sync.clock import Clock

Role = Literal["admin", "viewer"]
COOKIE: Final = "miniapp_console"
SESSION_TTL: Final = 8 * 3600  # seconds a session lasts: a working day, then log in again
LOGIN_FORM_TTL: Final = 3600  # seconds a login form's token stays good
MAX_FAILURES: Final = 5  # wrong tokens from one client within FAILURE_WINDOW before it is turned away
FAILURE_WINDOW: Final = 300.0


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in operator: the role, and the CSRF token their forms carry."""

    role: Role
    csrf: str

    @property
    def can_act(self) -> bool:
        """Return whether this session may press buttons (viewers may not)."""
        return self.role == "admin"

    def check_csrf(self, given: str | None) -> bool:
        """Return whether a POST carried this session's CSRF token (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def _fingerprint(token: str) -> str:
    return hashlib.sha256(b"console token " + token.encode()).hexdigest()[:16]


class Gate:
    """Exchange tokens for sessions, and read sessions back from their cookie."""

    def __init__(self, key: bytes, *, admin_token: str | None, viewer_token: str | None, clock: Clock) -> None:
        self._tokens: dict[Role, str | None] = {"admin": admin_token, "viewer": viewer_token}
        self._clock = clock
        clock_now = clock.now

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:  # the injected clock, so tests can expire a session
                return int(clock_now())

        self._sessions = URLSafeTimedSerializer(key, salt="console-session", signer=_Signer)
        self._forms = URLSafeTimedSerializer(key, salt="console-login", signer=_Signer)
        self._failures: dict[str, deque[float]] = {}
        self._ended: dict[str, float] = {}  # CSRF token of a logged-out session → when its cookie would expire

    def login_form_token(self) -> str:
        """Return a token for the login form: a login POST without one from our own page is refused."""
        return self._forms.dumps(secrets.token_hex(8))

    def check_login_form(self, given: str | None) -> bool:
        """Return whether a login POST carried a form token this console issued lately."""
        try:
            self._forms.loads(given or "", max_age=LOGIN_FORM_TTL)
        except BadSignature:
            return False
        return True

    def throttled(self, client: str) -> bool:
        """Return whether ``client`` failed too often lately to try again now."""
        failures = self._failures.get(client)
        if not failures:
            return False
        while failures and failures[0] < self._clock.now() - FAILURE_WINDOW:
            failures.popleft()
        return len(failures) >= MAX_FAILURES

    def login(self, given: str, client: str) -> str | None:
        """Return a new session's cookie value when ``given`` is a configured token, else None (and count it)."""
        role: Role | None = None
        for name, token in self._tokens.items():  # both compared, always: the time says nothing
            if token and hmac.compare_digest(given.encode(), token.encode()) and role is None:
                role = name
        if role is None:
            self._failures.setdefault(client, deque()).append(self._clock.now())
            if len(self._failures) > 10_000:  # a bounded memory under a spray from many addresses
                self._failures.pop(next(iter(self._failures)))
            return None
        self._failures.pop(client, None)
        token = self._tokens[role]
        assert token is not None
        data = {"role": role, "csrf": secrets.token_urlsafe(24), "token": _fingerprint(token)}
        return self._sessions.dumps(data)

    def session(self, cookie: str | None) -> Session | None:
        """Return the session a cookie holds, or None when absent, forged, expired or opened with an old token."""
        if not cookie:
            return None
        try:
            data: Any = self._sessions.loads(cookie, max_age=SESSION_TTL)
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(data, dict) or data.get("role") not in self._tokens or data.get("csrf") in self._ended:
            return None
        role: Role = data["role"]
        token = self._tokens[role]
        if not token or not hmac.compare_digest(str(data.get("token")), _fingerprint(token)):
            return None
        return Session(role, str(data.get("csrf")))

    def end(self, session: Session) -> None:
        """End a session (logout): its cookie, even if a copy was kept, opens nothing any more."""
        now = self._clock.now()
        self._ended = {csrf: until for csrf, until in self._ended.items() if until > now}
        self._ended[session.csrf] = now + SESSION_TTL
