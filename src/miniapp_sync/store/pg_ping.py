"""PostgreSQL connections are pinged on checkout only when they sat idle in the pool a while.

``pool_pre_ping`` sends a ``SELECT 1`` round trip before every checkout: on a worker, one more
round trip (and one more transaction) per store call, most of them on connections given back
milliseconds before. What the ping is for is a connection that died while idle (a database
restart, a proxy or firewall dropping idle sessions): one checked in less than ``PING_IDLE``
seconds ago is handed out without it. If the database went away in that window, the call fails
as a call in flight during the restart fails anyway: with a ``StoreError`` naming the call and
the driver's "server closed the connection" (``database.translated``), and SQLAlchemy, seeing a
disconnect, invalidates the pool's older connections, so the next call connects afresh.

A connection idle longer is pinged; a failed ping raises ``DisconnectionError``, on which the
pool drops that connection and checks out (connects) another, as ``pool_pre_ping`` does.
"""

from __future__ import annotations

import time
from typing import Any, Final

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

PING_IDLE: Final = 2.0  # seconds in the pool after which a connection is pinged before use

_IDLE_SINCE: Final = "miniapp_sync_idle_since"  # connection record info key: monotonic time of its check-in


def ping_when_idle(engine: Engine, idle: float = PING_IDLE) -> None:
    """Ping ``engine``'s pooled connections on checkout when they were idle over ``idle`` seconds."""

    @event.listens_for(engine, "connect")
    def connected(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()  # a new connection is alive: no ping on its first use

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, float("-inf")) <= idle:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()  # the ping's implicit transaction, not left open for the caller
        except Exception as exc:  # whatever the driver raises, this connection is no good
            raise DisconnectionError(f"a pooled connection was found dead: {exc}") from exc
