"""The studio's pages, one module each; ``ROUTERS`` is what the app includes."""

from __future__ import annotations

from fastapi import APIRouter

from adaptune.studio.pages import new_job, runs

ROUTERS: list[APIRouter] = [new_job.router, runs.router]
