"""The garbage collector's young-generation threshold, raised while any bulk run is on."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from typing import Final

# CPython collects its youngest generation every 700 net new container objects, and one decoded
# page of 100 records is ~1,600 of them: a run collected in the middle of nearly every page and
# promoted the page in hand, and enough promotions trigger full collections, which walk every
# object of the process (~110,000 after start-up, ~40 ms each). A threshold above a page's worth
# lets each page be freed while still young: measured ~3 µs a record less, an eighth of the CPU.
RUN_GC_THRESHOLD: Final = 10_000


class Collector:
    """Raises the young generation's threshold to RUN_GC_THRESHOLD while any run is on.

    The thresholds are the process's: the first run to start raises them, the last to finish
    puts back what it found (runs overlap in a server, and may run in several threads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._saved = gc.get_threshold()

    @contextlib.contextmanager
    def relaxed(self) -> Iterator[None]:
        """Keep the threshold raised for the block."""
        with self._lock:
            if self._runs == 0:
                self._saved = gc.get_threshold()
                young, *older = self._saved
                if young:  # 0 means automatic collection is off: leave it so
                    gc.set_threshold(max(young, RUN_GC_THRESHOLD), *older)
            self._runs += 1
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1
                if self._runs == 0:
                    gc.set_threshold(*self._saved)


GC = Collector()
