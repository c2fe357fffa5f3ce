"""The app's one job queue (``app.state.jobs``), made on first use; tests may set their own."""

from __future__ import annotations

import threading

from fastapi import FastAPI

from adaptune.studio.jobs import JobQueue

_made = threading.Lock()


def job_queue(app: FastAPI) -> JobQueue:
    """The app's job queue; the first call also starts a job left queued by an earlier studio."""
    with _made:
        queue = getattr(app.state, "jobs", None)
        if queue is None:
            queue = app.state.jobs = JobQueue(app.state.settings)
            queue.advance()
    return queue
