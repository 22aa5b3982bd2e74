"""Handing a worker its database URL (which may carry a password) without leaving a copy.

A worker on a Ray cluster cannot inherit the launcher's environment, and what Ray is told
is not private: the entrypoint goes to its job log, and ``runtime_env`` (env_vars
included) and metadata are kept in the cluster's job table, which ``ray job list`` prints
to anyone who can reach the dashboard. So the URL goes through the job directory (the
storage both sides reach) as a one-shot file: created owner-only (0600) and exclusively,
read and deleted by the worker as the first thing it does, and deleted by the launcher
when the job ends without a worker ever reading it (stopped while pending).
"""

from __future__ import annotations

import os
from pathlib import Path

from providers.local.jobdir import JobDir

SECRET_FILE = ".database_url"


def secret_path(job: JobDir) -> Path:
    return job.path / SECRET_FILE


def hand_over(job: JobDir, database_url: str) -> None:
    """Leave ``database_url`` for the job's next worker (replacing an unread one)."""
    path = secret_path(job)
    path.unlink(missing_ok=True)
    # O_EXCL with 0600: nobody else can have opened it, nor can read it in between.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(database_url)


def take(job: JobDir) -> str | None:
    """In the worker: the handed-over URL, deleted as it is read (None: none was left)."""
    path = secret_path(job)
    try:
        url = path.read_text()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return url or None


def discard(job: JobDir) -> None:
    """Delete an unread URL (the job ended before a worker started)."""
    secret_path(job).unlink(missing_ok=True)
