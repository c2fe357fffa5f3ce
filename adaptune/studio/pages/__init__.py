"""The studio's pages, one module each; ``ROUTERS`` is what the app includes."""

from __future__ import annotations

from fastapi import APIRouter

from adaptune.studio.pages import lineage, models, new_job, runs, try_it

ROUTERS: list[APIRouter] = [
    new_job.router,
    runs.router,
    models.router,
    try_it.router,
    lineage.router,
]
