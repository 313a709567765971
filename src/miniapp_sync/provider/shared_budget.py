"""One request budget per installation shared by every worker process and machine (D5, D34).

The same pacing as ``ratelimit.RateLimiter`` (slots ``spacing`` apart, a margin under the
rate; never two grants closer than the rate's interval), with the budget's state in a PostgreSQL
row per installation (``rate_budgets``) instead of process memory. A worker **leases** slots: one
atomic ``UPDATE … RETURNING`` takes the next ``lease`` slots from ``max(now, TAT, paused_until)``
on and moves TAT past them; the row lock serialises workers, so every slot goes to one worker.
The worker then hands its slots out locally, first in, first out, sleeping until each.

A lease is up to ``LEASE`` seconds of budget (at 4 requests/s: 4 slots, one round trip per 4
requests instead of one per request; at most ``MAX_LEASE`` slots at high rates; more after a
handover, below). Slots a worker
leased but did not use (its job ended, it stalled) are lost to the budget, never handed out twice.

Time comes from the database's clock (``clock_timestamp()``), not the worker's: machines' clocks
drift apart, the database is the one clock every worker shares. A worker only turns its leased
slots into local times (``slot - database now``), which no clock skew can distort. Tests may pass
their own time source instead.

Never closer than the interval, across workers: within its lease a worker grants at its slots
or later, each grant one interval after its previous one, and none later than one interval
before the lease ends (where the next lease, maybe another worker's, begins). So lateness (the
event loop's, a stall) shifts the rest of a lease, and the margin's room (``spacing - interval``
a slot, 31 ms a lease at 4 requests/s: ``SHARED_MARGIN``) absorbs it. What no longer fits before the lease's end
goes on in the next lease when nobody leased in between (the two are one stretch of budget),
else it is dropped, and the budget leased again from then: pace, never catch up.

A handover costs a guard, not a slot: a lease that does not follow on from the caller's own last
one (another worker leased last, or nobody yet) starts ``HANDOVER`` seconds after the TAT at the
least. So every worker may grant up to one interval *plus the guard* before its lease's end: the
next lease is either its own (following on, granted an interval after its last grant) or starts
a guard later. The worker tells the database where its last lease ended; the row's TAT equals it
only when nobody leased since (TATs only grow), so no column records who leased.

A lease after a handover **stretches**: it takes ``STRETCH`` seconds of budget (16 slots at 4
requests/s), not ``LEASE``. Two workers running syncs of one installation both want its budget
all the time, so their leases alternate, and every lease's end is a handover: it pays the guard,
and the lateness a busy loop gathered through the lease is no longer carried on but costs the
slots it pushed past the lease's end (a whole slot, a quarter of a second's budget at 4/s, where
the one-worker case loses only the lateness itself). Stretched leases alternate four times less
often, and their guard is four times what a one-second lease's was, the same share of the
budget (``HANDOVER``). A worker's first lease does not stretch (nothing says another worker is
leasing), nor one that follows on from its own (a worker alone keeps one-second leases), nor one
asked for more than a second after the end of the worker's last lease, which it did not use up
(a small sync's page, not a sync under way). The cost: a worker whose job ends early in a
stretched lease leaves the rest of it unused (at most ``STRETCH`` seconds of budget, once per
job), the other worker waiting.

A pause (a 429's ``Retry-After``, an exhausted-budget hint) is written to the row at once, so
every later lease starts after it; the pausing worker drops its own leased slots. Another worker
learns of it with its next lease: within ``LEASE`` seconds, ``STRETCH`` when its lease stretched.
This departs from D34's letter (before, every request asked the database whether a pause had
arrived, a second round trip per request): a worker that has not heard yet sends at most one
lease of requests into another's pause.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from sqlalchemy import Engine, text

from miniapp_sync.clock import Clock
from miniapp_sync.provider.ratelimit import RateLimiter

__all__ = ["LimiterFactory", "SharedRateLimiter", "shared_limiters"]

LimiterFactory = Callable[[str, float, Clock], RateLimiter]  # (installation id, rate, clock): limiter_for's shape
TimeSource = Callable[[], float]  # epoch seconds; None means the database's clock

LEASE: Final = 1.0  # seconds of budget one round trip may lease
MAX_LEASE: Final = 32  # slots one lease may take
# Departs from ratelimit.MARGIN (1%) for budgets shared by leases: a lease's room (``spacing -
# interval`` a slot) is all that absorbs a loop's lateness when another worker leased the next
# second, and a slot that no longer fits is dropped: a quarter of the budget at 4 requests/s. At
# 1% a lease has 10 ms of room, less than four wake-ups of a busy worker (bench/tenants.py N=50,
# loop lag p50 2.5-6.5 ms: installations whose syncs ran on two workers used 75% of their budget,
# on one worker 97.5%); at 3%, 31 ms.
SHARED_MARGIN: Final = 0.03
LEASE_THREADS: Final = 4  # threads a process takes leases on (each a round trip of a few ms)
# A lease taken after another worker's (or a first one) starts this much after the TAT, so the
# previous lease's holder may grant its last slot this late (at most half an interval: at high
# rates a guard is worth less than the slot it saves). It takes the lateness a busy loop gathers
# through a stretched lease past the margin's room: at 4 requests/s 100 ms, 2.4% of a stretched
# lease, paid only when two workers alternate. At 25 ms (2.4% of a one-second lease) the lateness
# gathered through 16 slots overran it: bench/budgets.py (2 workers a budget, --busy 30, 40 s)
# dropped 329-410 leased slots and used 93.2-93.9% of the budgets; at 100 ms, 2 and 96.1%.
HANDOVER: Final = 0.1
# Seconds of budget a lease takes after a handover (see the module docstring). bench/budgets.py,
# 2 workers a budget, loop held up to 30 ms every 5 ms, 40 s, on a loaded machine (wall): 1 s
# used 92.0% and 89.9% of the budgets, 4 s 93.9% and 93.2%, 8 s 95.6% (one worker: 99.8%; the
# figure counts the grants of callers waiting at the end: ~3% over what the pacing allows).
# Not 8: a worker learns of another's pause, and a job ending early wastes, up to this much.
STRETCH: Final = 4.0
CONTIGUOUS: Final = 1e-5  # seconds: a lease starting this close to the last one's end follows on (float rounding)

# The row is created on first use; TAT 0 (1970) means "free now".
_ENSURE: Final = text(
    "INSERT INTO rate_budgets (installation_id, tat, paused_until) VALUES (:key, 0, 0) "
    "ON CONFLICT (installation_id) DO NOTHING"
)
_NOW: Final = "COALESCE(CAST(:now AS double precision), extract(epoch FROM clock_timestamp()))"
# A reservation must not wait for its WAL record to reach the disk: every lease takes one, and
# flushing each would serialise all workers on fsync. Losing the last reservations in a database
# crash only moves TAT back a little, while every worker's requests fail anyway. The setting is
# made inside the statement (``set_config(…, true)``: for its own transaction, which PostgreSQL
# reads when it commits), so a lease is one round trip on an autocommit connection: not four
# (BEGIN, SET LOCAL, the update, COMMIT), ~20 a second per worker at N=50 (issue #17 item 5).
# ``:mine`` is where the caller's own last lease ended (NULL: none): a TAT equal to it means
# nobody leased since, the new lease follows on; else it starts the handover guard later and
# takes ``:stretch`` slots, not ``:count`` (a first lease, NULL, pays the guard but does not
# stretch). The row is read once, locked, for both decisions and the update.
_RESERVE: Final = text(
    f"WITH clock AS (SELECT {_NOW} AS now, set_config('synchronous_commit', 'off', true) AS flush), "
    "held AS (SELECT tat, paused_until, CAST(:mine AS double precision) AS mine FROM rate_budgets "
    "WHERE installation_id = :key FOR UPDATE), "
    "lease AS (SELECT GREATEST(tat + CASE WHEN abs(tat - mine) <= :contiguous THEN 0 ELSE :guard END, "
    "clock.now, paused_until) AS slot, "
    "CASE WHEN abs(tat - mine) > :contiguous THEN :stretch ELSE :count END AS slots, "
    "clock.now, clock.flush FROM held, clock) "
    "UPDATE rate_budgets SET tat = lease.slot + lease.slots * :interval "
    "FROM lease WHERE installation_id = :key "
    "RETURNING lease.slot, lease.slots, lease.now, lease.flush"
)
# The TAT is left where it is: a lease starts after ``paused_until`` anyway, and a TAT moved to
# the pause's end would make the lease after it pay the handover guard on top of the pause.
_PAUSE: Final = text(
    f"WITH clock AS (SELECT {_NOW} + :delay AS until) "
    "UPDATE rate_budgets SET paused_until = GREATEST(paused_until, clock.until) "
    "FROM clock WHERE installation_id = :key"
)
_PAUSED: Final = text("SELECT paused_until FROM rate_budgets WHERE installation_id = :key")


class SharedRateLimiter(RateLimiter):
    """Grant an installation's requests ``1/rate`` apart at least across every process sharing the database."""

    def __init__(
        self,
        engine: Engine,
        key: str,
        rate: float,
        *,
        clock: Clock,
        time_source: TimeSource | None = None,
        margin: float = SHARED_MARGIN,
    ) -> None:
        super().__init__(rate, clock=clock, margin=margin)
        self.engine = engine
        self.key = key
        self.time_source = time_source
        self.lease = max(1, min(MAX_LEASE, math.floor(self.rate * LEASE)))
        self.stretch = max(self.lease, min(MAX_LEASE, math.floor(self.rate * STRETCH)))  # a lease after a handover
        self.guard = min(HANDOVER, self.interval / 2)  # how late a lease after another worker's starts
        self.leases = 0  # round trips taken for slots (for reports and tests)
        self.dropped = 0  # leased slots given up because they no longer fitted (for reports and tests)
        self._ensured = False
        # The current lease, in local monotonic time: its next unused slot, the slots left, and
        # the last moment a grant may take (one interval before the lease's end, plus the handover guard).
        self._slot = 0.0
        self._step = self.spacing
        self._left = 0
        self._last = -math.inf
        self._end: float | None = None  # where the current lease ends on the budget's clock (the TAT it left)
        self._granted = -math.inf  # local monotonic time of this process's latest grant

    def _now(self) -> float | None:
        return None if self.time_source is None else self.time_source()

    def reserve(self, count: int = 1) -> tuple[float, float]:
        """Take the next ``count`` slots; return (the first slot, now), epoch seconds on the budget's clock."""
        first, _, now, _ = self._reserve(count, count)
        return first, now

    def _reserve(self, count: int, stretch: int) -> tuple[float, int, float, tuple[float, float]]:
        """Reserve ``count`` slots, or ``stretch`` after a handover; return (the first slot, how many, now, the
        local monotonic times just before and after the statement)."""
        if not self._ensured:
            with self.engine.begin() as conn:
                conn.execute(_ENSURE, {"key": self.key})
            self._ensured = True
        # Autocommit: the update is its own transaction, no BEGIN and COMMIT round trips around it.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            params = {
                "key": self.key,
                "interval": self.spacing,
                "count": count,
                "stretch": stretch,
                "now": self._now(),
                "mine": self._end,
                "guard": self.guard,
                "contiguous": CONTIGUOUS,
            }
            before = self.clock.monotonic()
            row = conn.execute(_RESERVE, params).one()
            after = self.clock.monotonic()
        first, taken = float(row.slot), int(row.slots)
        self._end = first + taken * self.spacing  # the next reservation follows on from here, or pays the guard
        return first, taken, float(row.now), (before, after)

    def paused_until(self) -> float:
        """Return when the budget's current pause ends (epoch seconds on the budget's clock)."""
        with self.engine.connect() as conn:
            return float(conn.execute(_PAUSED, {"key": self.key}).scalar_one())

    async def _take_lease(self) -> None:
        previous = self._end
        # Stretched only for a worker that used its last lease up, or wants more within a second
        # of its end: a sync under way, not a small sync's page that would leave the rest unused.
        wanting = previous is not None and (not self._left or self.clock.monotonic() - self._last <= LEASE)
        first, taken, budget_now, (before, after) = await asyncio.get_running_loop().run_in_executor(
            _leasing(), self._reserve, self.lease, self.stretch if wanting else self.lease
        )
        self.leases += 1
        # The budget's "now" fell somewhere in [before, after] locally (the statement's round
        # trip, timed on the thread that made it): the lease is taken as starting at the latest
        # and ending at the earliest it can, so it never overlaps the leases before and after it.
        start = after + (first - budget_now)
        last = before + (first - budget_now) + taken * self.spacing - self.interval
        if previous is not None and abs(first - previous) <= CONTIGUOUS:
            # Nobody leased between this process's last lease and this one: they are one stretch
            # of budget, so the lateness that shifted the last lease's slots carries on into this
            # one (granted an interval apart at least, before the new end), instead of dropping the
            # slot that no longer fitted. Dropped, it cost a quarter of the budget at 4 requests/s:
            # a loop late by ~3 ms a wake-up (a busy worker's p50) overran the 10 ms of room a
            # lease has (issue #17 item 5: 74% of the budget at N=50).
            self._left += taken  # from the next slot on, where the lateness left it
        else:
            self.dropped += self._left  # what the last lease still held: another lease is between
            self._slot = start
            self._left = taken
        # A grant may be up to the guard past the lease's last slot time: whoever leases next after
        # this worker starts a guard later (or it is this worker, following on).
        self._last = last + self.guard
        # Slots that no longer fit, an interval apart from the next one on, are dropped.
        fits = max(1, math.floor((self._last - self._slot) / self.interval) + 1)
        self.dropped += max(0, self._left - fits)
        self._left = min(self._left, fits)
        # The room left over the interval is shared alike by every gap and the lease's tail, so
        # the round trip and the loop's lateness cost a little of each, not the lease's last slot.
        # The guard is left out of it: kept whole at the lease's end, for lateness only, it does
        # not spread the slots later (a lone worker's leases follow on without any guard).
        room = last - self._slot - (self._left - 1) * self.interval
        self._step = self.interval + max(0.0, room) / self._left

    async def acquire(self) -> float:
        """Wait for this caller's slot; return the time it was granted on the local monotonic clock."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._turn = loop, asyncio.Lock()
        async with self._turn:
            while True:
                if not self._left:
                    await self._take_lease()
                due = max(self._slot, self._granted + self.interval)
                now = self.clock.monotonic()
                if max(now, due) > self._last:
                    # What is left of the lease no longer fits before its end: lease again. The
                    # next lease carries it on when it follows on directly, else it is dropped.
                    await self._take_lease()
                    continue
                if now < due:
                    await self.clock.sleep(due - now)
                    continue  # look again: a pause (this process's) may have dropped the lease meanwhile
                self._left -= 1
                self._slot += self._step
                self._granted = now
                return now

    def pause_until(self, monotonic_time: float) -> None:
        """Grant nothing before ``monotonic_time`` (local monotonic) to any worker of this installation."""
        delay = max(0.0, monotonic_time - self.clock.monotonic())
        # Blocking on purpose: this runs on a 429 or an exhausted-budget hint, rarely, and every
        # lease after it must start after the pause.
        with self.engine.begin() as conn:
            if not self._ensured:
                conn.execute(_ENSURE, {"key": self.key})
            conn.execute(_PAUSE, {"key": self.key, "delay": delay, "now": self._now()})
        self._ensured = True
        self._left = 0  # the leased slots are before the pause: the budget is leased again after it
        self._end = None  # and the next lease carries nothing on from this one


_leases: ThreadPoolExecutor | None = None
_leases_made = threading.Lock()


def _leasing() -> ThreadPoolExecutor:
    """Return the threads that take leases: their own, not the loop's default executor.

    A lease is late budget when it waits: in the default executor (6 threads) it queued behind
    every other store call of the process (inbox drains, checkpoints, runs), and a lease granted
    late is budget lost (pace, never catch up). A few threads of their own, not a bigger default
    pool: more threads contending for the GIL made the event loop itself later.
    """
    global _leases
    with _leases_made:
        if _leases is None:
            _leases = ThreadPoolExecutor(LEASE_THREADS, thread_name_prefix="miniapp-sync-budget")
        return _leases


def shared_limiters(engine: Engine, *, time_source: TimeSource | None = None) -> LimiterFactory:
    """Return a ``limiter_for``-shaped factory whose limiters share their budget through ``engine``'s database."""
    made: dict[str, SharedRateLimiter] = {}

    def limiter(key: str, rate: float, clock: Clock) -> RateLimiter:
        old = made.get(key)
        if old is not None and old.rate == float(rate) and old.clock is clock:
            return old
        made[key] = SharedRateLimiter(engine, key, rate, clock=clock, time_source=time_source)
        return made[key]

    return limiter
