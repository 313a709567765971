"""Sessions on the injected clock: they expire, a changed token ends them, a guessing client is turned away."""

from __future__ import annotations

from miniapp_sync.console.auth import FAILURE_WINDOW, MAX_FAILURES, SESSION_TTL, Gate
from miniapp_sync.testing import FakeClock

KEY = b"k" * 32


def gate(clock: FakeClock, admin: str | None = "admin-token", viewer: str | None = "viewer-token") -> Gate:
    return Gate(KEY, admin_token=admin, viewer_token=viewer, clock=clock)


def test_a_session_holds_its_role_and_expires() -> None:
    clock = FakeClock(start=1_767_225_600.0)
    cookie = gate(clock).login("viewer-token", "1.2.3.4")
    assert cookie is not None
    session = gate(clock).session(cookie)
    assert session is not None
    assert session.role == "viewer"
    assert not session.can_act
    clock.advance(SESSION_TTL + 1)
    assert gate(clock).session(cookie) is None


def test_a_changed_token_ends_the_sessions_it_opened() -> None:
    clock = FakeClock(start=1_767_225_600.0)
    cookie = gate(clock).login("admin-token", "1.2.3.4")
    assert gate(clock).session(cookie) is not None
    assert gate(clock, admin="rotated-token").session(cookie) is None
    assert gate(clock, admin=None).session(cookie) is None


def test_a_forged_or_tampered_cookie_opens_nothing() -> None:
    clock = FakeClock(start=1_767_225_600.0)
    cookie = gate(clock).login("admin-token", "1.2.3.4")
    assert cookie is not None
    assert gate(clock).session(cookie[:-2] + "xx") is None
    assert Gate(b"o" * 32, admin_token="admin-token", viewer_token=None, clock=clock).session(cookie) is None


def test_the_csrf_token_is_per_session() -> None:
    clock = FakeClock(start=1_767_225_600.0)
    door = gate(clock)
    one, two = door.session(door.login("admin-token", "a")), door.session(door.login("admin-token", "a"))
    assert one is not None
    assert two is not None
    assert one.csrf != two.csrf
    assert one.check_csrf(one.csrf)
    assert not one.check_csrf(two.csrf)
    assert not one.check_csrf(None)


def test_a_client_that_keeps_guessing_is_turned_away_for_a_while() -> None:
    clock = FakeClock(start=1_767_225_600.0)
    door = gate(clock)
    for _ in range(MAX_FAILURES):
        assert not door.throttled("6.6.6.6")
        assert door.login("guess", "6.6.6.6") is None
    assert door.throttled("6.6.6.6")
    assert not door.throttled("7.7.7.7")  # others are not
    clock.advance(FAILURE_WINDOW + 1)
    assert not door.throttled("6.6.6.6")


def test_an_unset_token_never_matches_an_empty_guess() -> None:
    door = gate(FakeClock(start=1_767_225_600.0), admin=None, viewer="viewer-token")
    assert door.login("", "a") is None
