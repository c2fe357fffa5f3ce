"""What the studio was started with: the only directories it reads and writes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StudioSettings:
    """The studio's settings (``adaptune studio`` options).

    Attributes:
        runs_dir: The runs directory: runs started here go there, the Runs page lists it.
        registry_dir: The registry the Models, Try it and Lineage pages read (and promote in).
        compiled: The compiled pipeline a started job runs.
        token: Bearer token every request must carry (``Authorization: Bearer`` or the
            ``adaptune_token`` cookie set by ``/login?token=...``); None on loopback.
        csrf_token: The token every state-changing request carries (a form field or the
            ``X-CSRF-Token`` header); random per studio process.
        uploads_dir: Where uploaded data files are kept (under ``runs_dir``).
    """

    runs_dir: Path
    registry_dir: Path
    compiled: Path
    token: str | None = None
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def uploads_dir(self) -> Path:
        """Uploaded data files: ``<runs_dir>/studio-uploads/<sha256>/<name>``."""
        return self.runs_dir / "studio-uploads"
