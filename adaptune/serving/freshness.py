"""Whether a loaded version's files are still the ones verified when it was loaded.

A version's files are checked against the sha256 recorded at registration when it is loaded;
the pool then keeps what ``os.stat`` said of each file (size, modification and change times,
inode and device) and the checksums it verified against. Before every answer from a loaded
version those few ``stat`` calls are repeated (microseconds, no file is read): when nothing
moved, the weights in memory are still the files on disk; when anything did (a file rewritten,
replaced, touched or deleted, or ``version.json`` now recording other checksums), the files are
hashed again and the version is kept only if they still match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from adaptune.registry import RegisteredVersion
from adaptune.registry.local import ADAPTER_FILES

FileStat = tuple[int, int, int, int, int] | None
"""size, mtime_ns, ctime_ns, inode, device; None for a file that cannot be stat'ed."""


def recorded_checksums(version: RegisteredVersion) -> Any:
    """What ``version.json`` records as the files' sha256 (None when it records none)."""
    return version.metadata.get("files")


def watched_files(version: RegisteredVersion) -> list[str]:
    """The files whose change makes a loaded version suspect: those with a checksum.

    A version registered before checksums were recorded is watched by its adapter files.
    """
    recorded = recorded_checksums(version)
    if isinstance(recorded, dict) and recorded:
        return sorted({*map(str, recorded), *ADAPTER_FILES})
    return list(ADAPTER_FILES)


def _stat(path: os.PathLike[str] | str) -> FileStat:
    try:
        s = os.stat(path)
    except OSError:
        return None
    return (s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev)


@dataclass(frozen=True)
class Seen:
    """A version's files as they were when their checksums were last verified.

    Attributes:
        stats: Each watched file's ``stat`` facts.
        recorded: The checksums they were verified against (``version.json``'s ``files``).
    """

    stats: dict[str, FileStat]
    recorded: Any

    @classmethod
    def now(cls, version: RegisteredVersion) -> Seen:
        """What the version's files look like now (``stat`` only; nothing is read)."""
        stats = {name: _stat(version.path / name) for name in watched_files(version)}
        return cls(stats, recorded_checksums(version))

    def matches(self, version: RegisteredVersion) -> bool:
        """Whether nothing about ``version``'s files or recorded checksums moved since."""
        return self == Seen.now(version)
