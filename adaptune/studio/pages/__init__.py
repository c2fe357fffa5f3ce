"""The studio's pages, one module each; ``ROUTERS`` is what the app includes."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
