"""What every hostile case asserts: the exit code, one line and no traceback, nothing else changed.

``tree(root)`` lists every path below ``root`` with its file's sha256, so a case compares the
listing before and after the command; ``one_line_error(result)`` checks a click result;
``CORPUS`` counts the cases a module contributes (the closing note of the hostile-inputs issue
sums them with ``pytest --collect-only -m hostile``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner, Result

IGNORED_NAMES = frozenset({".lock", "__pycache__"})


def tree(root: Path, ignore: frozenset[str] = IGNORED_NAMES) -> dict[str, str]:
    """Every path below root (lock files aside): ``"dir"``, a link's target or its sha256."""
    root = Path(root)
    if not root.exists():
        return {}
    listing = {}
    for path in sorted(root.rglob("*")):
        if ignore & set(path.relative_to(root).parts):
            continue
        if path.is_symlink():
            listing[str(path.relative_to(root))] = "link:" + str(path.readlink())
        elif path.is_dir():
            listing[str(path.relative_to(root))] = "dir"
        elif not path.is_file():  # a pipe or device: reading it could wait forever
            listing[str(path.relative_to(root))] = "special"
        else:
            listing[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return listing


def invoke(*args: object, input: str | None = None) -> Result:
    """Run ``adaptune ARGS`` in this process, as a user types it."""
    from adaptune.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def one_line_error(result: Result, code: int = 2) -> str:
    """The one output line of a refusal; fails on another code, more lines or a traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}") from result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]
