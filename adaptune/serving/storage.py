"""Where the served registry lives: a local directory, or a ``gs://`` copy made at start.

On Vertex AI the model's files arrive as ``AIP_STORAGE_URI``, a Cloud Storage prefix. The
server reads the registry from a local directory, so such a prefix is copied once, at start,
into the cache; a version promoted afterwards is served after a restart. A local (or mounted)
registry is read directly, and its aliases are followed live.
"""

from __future__ import annotations

from pathlib import Path

from adaptune.atomic import staged_directory
from adaptune.base_models.remote import cache_root
from adaptune.errors import UserError
from adaptune.hashing import sha256_text


def local_registry(location: str) -> Path:
    """The registry at ``location`` as a local directory (``gs://`` is copied into the cache).

    Raises:
        UserError: If a ``gs://`` location cannot be listed or holds nothing.
    """
    if not location.startswith("gs://"):
        return Path(location)
    from adaptune.gcs import gcs_filesystem

    fs = gcs_filesystem()
    prefix = location.removeprefix("gs://").rstrip("/")
    try:
        files = [p for p, info in fs.find(prefix, detail=True).items() if info["type"] == "file"]
    except (FileNotFoundError, OSError) as exc:
        raise UserError(f"registry {location}: cannot list it ({exc})") from None
    if not files:
        raise UserError(f"registry {location}: nothing there")
    target = cache_root().parent / "registries" / sha256_text(prefix)[:16]
    with staged_directory(target) as staging:
        for path in files:
            local = staging / path[len(prefix) :].lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get(path, str(local))
    return target
