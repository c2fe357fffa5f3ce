"""The ``gs://`` filesystem every layer reads Cloud Storage through (data, checkpoints, registries).

gcsfs's core ``GCSFileSystem`` (an fsspec filesystem) is used directly: gcsfs's default
"extended" class first asks the Storage Control gRPC API for the bucket's layout, which GCS
emulators do not serve. ``STORAGE_EMULATOR_HOST`` (read when a filesystem is made, never at
import) points it at an emulator, with anonymous credentials.
"""

from __future__ import annotations

import os
from typing import Any

GCS_PREFIX = "gs://"


def is_gcs(path: str) -> bool:
    """Whether ``path`` is a ``gs://`` URI."""
    return path.startswith(GCS_PREFIX)


def gcs_filesystem() -> Any:
    """A gcsfs filesystem; anonymous and pointed at the emulator when one is configured."""
    from gcsfs.core import GCSFileSystem

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        return GCSFileSystem(token="anon", endpoint_url=emulator)
    return GCSFileSystem()
