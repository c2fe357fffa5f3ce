"""Named instants of a multi-step write where a test can kill the process, as ``kill -9`` would.

A write that must survive a crash at any instant (a release: lineage, version, aliases, Vertex AI)
marks each step with ``kill_point("name")``. When ``ADAPTUNE_KILL_AT`` names that instant, the
process sends itself SIGKILL there: no ``finally`` block, no ``atexit``, nothing is flushed. Tests
use it to prove that what a crash leaves behind is consistent; otherwise it is one lookup.

``ADAPTUNE_STOP_AT`` names an instant where the process stops itself (SIGSTOP) instead: a test
then kills a whole process tree at that instant (``kill -9`` of a runner and its tasks).
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "ADAPTUNE_KILL_AT"
STOP_AT_ENV = "ADAPTUNE_STOP_AT"


def kill_point(instant: str) -> None:
    """Kill this process with SIGKILL when ``ADAPTUNE_KILL_AT`` equals ``instant``.

    Stop it (SIGSTOP) when ``ADAPTUNE_STOP_AT`` does.
    """
    if os.environ.get(KILL_AT_ENV) == instant:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(STOP_AT_ENV) == instant:
        os.kill(os.getpid(), signal.SIGSTOP)
