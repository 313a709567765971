"""Which queue runs this deployment's jobs: the one choice the job path makes from the backend (D36).

The embedded default (SQLite) runs them in this process (``LocalQueue``); the scale-out
(PostgreSQL) shares them through Procrastinate, imported here only when it is the one chosen.
"""

from __future__ import annotations

from miniapp_sync.jobs.local import LocalQueue
from miniapp_sync.jobs.model import JobRetry
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.jobs.work import Work


def deployment_queue(work: Work, *, retry: JobRetry | None = None, pool_size: int = 4) -> JobQueue:
    """Return the queue the deployment of ``work``'s store runs its jobs through."""
    if work.runtime.backend.shared_queue:
        from miniapp_sync.jobs.procrastinate_queue import ProcrastinateQueue

        return ProcrastinateQueue(work, retry=retry, pool_size=pool_size)
    return LocalQueue(work, retry=retry)
