"""Webhook samples read for the checklist and the package: only files inside ``--samples`` (D31c).

An event's sample is ``<folder>/sample_name(event)``: one file name, whatever the event name
holds (``../../loot/creds`` names ``.._.._loot_creds.json`` in the folder, not a path out of
it). The file itself must be a regular file, opened without following a symbolic link: a link
in the samples folder would let ``package`` copy any file the user can read (a 0600 key file)
into a package meant to be shared.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from miniapp_sync.webhooks.samples import sample_name

__all__ = ["Sample", "read_sample"]

_OPEN_FLAGS: Final = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True, slots=True)
class Sample:
    """An event's sample: its file name, and either its bytes or why it was not read (None, None: absent)."""

    name: str
    data: bytes | None = None
    problem: str | None = None


def read_sample(folder: Path, event: str) -> Sample:
    """Read the sample of ``event`` from ``folder``, refusing links and anything but a regular file."""
    name = sample_name(event)
    path = folder / name
    if path.is_symlink():
        return Sample(name, problem=f"{name} is a symbolic link; samples are read only from inside --samples")
    try:
        fd = os.open(path, _OPEN_FLAGS)  # O_NONBLOCK: a FIFO planted here must not hang the command
    except FileNotFoundError:
        return Sample(name)
    except OSError as exc:
        return Sample(name, problem=f"{name} cannot be read: {exc.strerror or exc}")
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return Sample(name, problem=f"{name} is not a regular file")
        return Sample(name, handle.read())
