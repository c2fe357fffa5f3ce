"""Building a typed settings dataclass from a pipeline dict parameter.

Pipeline dicts travel as protobuf Structs, where every number is a float, and a misspelt key
would otherwise be ignored; :func:`from_pipeline_dict` handles both for every settings class.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from adaptune.errors import UserError

T = TypeVar("T")


def from_pipeline_dict(
    cls: type[T], values: dict[str, Any] | None, what: str, int_fields: tuple[str, ...] = ()
) -> T:
    """``cls(**values)`` after rejecting unknown keys and turning integral floats into ints.

    Args:
        cls: A dataclass whose ``__post_init__`` validates the values.
        values: The pipeline dict (None: all defaults).
        what: How the settings are named in messages, e.g. ``training setting``.
        int_fields: Fields that are integers.

    Raises:
        UserError: On unknown keys (listing the known ones) or invalid values.
    """
    values = dict(values or {})
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown {what}(s) {unknown}; known: {sorted(known)}")
    for name in int_fields:
        value = values.get(name)
        if isinstance(value, float) and value.is_integer():
            values[name] = int(value)
    return cls(**values)
