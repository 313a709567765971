"""Jobs (D32-D36): syncs, inbox drains and trigger deliveries behind one queue interface.

``LocalQueue`` runs them in this process (the embedded default, SQLite); ``ProcrastinateQueue``
(``jobs.procrastinate_queue``, imported only where used) shares them between processes and
machines through PostgreSQL. ``Work`` holds what each job does; ``deployment_queue`` picks the
queue of a store's backend.
"""

from miniapp_sync.jobs.backend import deployment_queue
from miniapp_sync.jobs.local import Finished, LocalQueue
from miniapp_sync.jobs.model import Enqueued, Job, JobKind, JobRetry, Outcome
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.jobs.work import DeliverHook, DrainHook, Work

__all__ = [
    "DeliverHook",
    "DrainHook",
    "Enqueued",
    "Finished",
    "Job",
    "JobKind",
    "JobQueue",
    "JobRetry",
    "LocalQueue",
    "Outcome",
    "Work",
    "deployment_queue",
]
