"""Jobs (D32-D34): syncs, inbox drains and trigger deliveries behind one queue interface.

``LocalQueue`` runs them in this process (the embedded default, SQLite); ``ProcrastinateQueue``
shares them between processes and machines through PostgreSQL. ``Work`` holds what each job does.
"""

from miniapp_sync.jobs.local import Finished, LocalQueue
from miniapp_sync.jobs.model import Enqueued, Job, JobKind, JobRetry, Outcome
from miniapp_sync.jobs.procrastinate_queue import Liveness, ProcrastinateQueue
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.jobs.schema import upgrade_database
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
    "Liveness",
    "LocalQueue",
    "Outcome",
    "ProcrastinateQueue",
    "Work",
    "upgrade_database",
]
