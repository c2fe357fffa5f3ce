"""Typed settings dataclasses built from pipeline dict parameters, every field checked.

Each settings class (``training``, ``data``, ``adapter``, ``gate``, ``evaluation``,
``vertex_deploy``) declares its fields with :func:`setting`: a default, a help text and the
allowed range. :func:`check_fields` (called from each ``__post_init__``) checks every field
against its type hint and range and names it as the user wrote it
(``training.learning_rate must be a finite number > 0, got 'fast'``): numbers are finite
numbers (never booleans, strings, ``.inf`` or ``.nan``), integers are integers within 32 bits
unless the field says otherwise, strings are strings without NUL characters and of bounded
length, lists are lists of what they hold.

Pipeline dicts travel as protobuf Structs, where every number is a float, and a misspelt key
would otherwise be ignored; :func:`from_pipeline_dict` handles both for every settings class.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, TypeVar, Union

from adaptune.errors import UserError

T = TypeVar("T")

INT_LIMIT = 2**31 - 1
"""Largest integer a setting takes unless its field allows more (10**30 steps is a mistake)."""
SEED_LIMIT = 2**32 - 1
"""Largest seed (what every random generator adaptune seeds takes)."""
MAX_CHARS = 4096
"""Longest string a setting takes unless its field allows more."""
MAX_TEXT_CHARS = 65536
"""Longest free text (a prompt template, a system instruction)."""
SHOWN_CHARS = 60
"""How much of a refused value a message shows."""


@dataclass(frozen=True)
class Rules:
    """The range a setting's value must be in, beyond its type.

    Attributes:
        ge: Lowest value allowed.
        gt: Values must be above this.
        le: Highest value allowed (integers: ``INT_LIMIT`` when None).
        lt: Values must be below this.
        choices: The only values allowed.
        non_empty: A string or list must not be empty.
        max_chars: Longest string allowed.
        phrase: What the value must be, when the type's own words would mislead.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] = ()
    non_empty: bool = False
    max_chars: int = MAX_CHARS
    phrase: str = ""


def setting(default: Any = MISSING, help: str = "", **rules: Any) -> Any:
    """A dataclass field with a help text and the range of its values (see ``Rules``).

    ``default`` may be a callable's result only for immutable values (numbers, strings,
    tuples); the field is checked by :func:`check_fields`.
    """
    return field(default=default, metadata={"help": help, "rules": Rules(**rules)})


def shown(value: Any) -> str:
    """A refused value as a message shows it: its repr, cut to ``SHOWN_CHARS``, on one line."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails is still a value to name
        text = f"<{type(value).__name__}>"
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 3] + "..."
    return text


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _members(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(hint)
    return (hint,)


def _bounds_phrase(rules: Rules, show_limit: bool) -> str:
    low = (rules.ge, ">=") if rules.ge is not None else (rules.gt, ">")
    high = (rules.le, "<=") if rules.le is not None else (rules.lt, "<")
    if show_limit and high[0] is None:
        high = (INT_LIMIT, "<=")

    def num(x: float | None) -> str:
        return str(int(x)) if x is not None and float(x).is_integer() else str(x)

    if low[0] is not None and high[0] is not None:
        if low[1] == ">=" and high[1] == "<=":
            return f" from {num(low[0])} to {num(high[0])}"
        left = "[" if low[1] == ">=" else "("
        right = "]" if high[1] == "<=" else ")"
        return f" in {left}{num(low[0])}, {num(high[0])}{right}"
    if low[0] is not None:
        return f" {low[1]} {num(low[0])}"
    if high[0] is not None:
        return f" {high[1]} {num(high[0])}"
    return ""


def _phrase(hint: Any, rules: Rules, show_limit: bool = False) -> str:
    """What a value of ``hint`` within ``rules`` is, in words (``INT_LIMIT`` if shown)."""
    if rules.phrase:
        return rules.phrase
    if rules.choices:
        return f"one of {list(rules.choices)}"
    words = []
    for member in _members(hint):
        if member is bool:
            words.append("true or false")
        elif member is int:
            words.append("an integer" + _bounds_phrase(rules, show_limit))
        elif member is float:
            words.append("a finite number" + _bounds_phrase(rules, False))
        elif member is str:
            words.append("a non-empty string" if rules.non_empty else "a string")
        elif typing.get_origin(member) is Literal:
            words.append(f"one of {list(typing.get_args(member))}")
        elif typing.get_origin(member) in (tuple, list):
            words.append("a list of non-empty strings")
        elif member is type(None):
            words.append("null")
        else:
            words.append(getattr(member, "__name__", str(member)))
    return " or ".join(words)


def _in_bounds(value: float, rules: Rules, is_int: bool) -> bool:
    high = (
        rules.le if rules.le is not None else (INT_LIMIT if is_int and rules.lt is None else None)
    )
    return not (
        (rules.ge is not None and value < rules.ge)
        or (rules.gt is not None and value <= rules.gt)
        or (high is not None and value > high)
        or (rules.lt is not None and value >= rules.lt)
    )


def _good_string(value: Any, rules: Rules) -> bool:
    return (
        isinstance(value, str)
        and "\x00" not in value
        and len(value) <= rules.max_chars
        and (bool(value) or not rules.non_empty)
    )


def _fits(member: Any, value: Any, rules: Rules) -> bool:
    """Whether ``value`` is a ``member`` within ``rules`` (choices are checked by the caller)."""
    if member is bool:
        return isinstance(value, bool)
    if member is int:
        return type(value) is int and _in_bounds(value, rules, True)
    if member is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        try:
            number = float(value)
        except OverflowError:
            return False
        return math.isfinite(number) and _in_bounds(number, rules, False)
    if member is str:
        return _good_string(value, rules)
    if member is type(None):
        return value is None
    origin = typing.get_origin(member)
    if origin is Literal:
        return isinstance(value, str) and value in typing.get_args(member)
    if origin in (tuple, list):
        item_rules = Rules(non_empty=True, max_chars=rules.max_chars)
        return (
            isinstance(value, list | tuple)
            and (bool(value) or not rules.non_empty)
            and len(value) <= rules.max_chars
            and all(_good_string(v, item_rules) for v in value)
        )
    return isinstance(value, member)


def check_value(name: str, value: Any, hint: Any, rules: Rules | None = None) -> None:
    """Check one setting's value against its type hint and rules.

    Args:
        name: The setting as the user writes it (``training.learning_rate``).
        value: Its value.
        hint: Its type (``int``, ``float``, ``str``, ``bool``, a ``Literal``, a list of
            strings, ``None`` or a union of those).
        rules: Its range (None: the type's own).

    Raises:
        UserError: Naming the setting, what it must be and what it got.
    """
    rules = rules or Rules()
    if rules.choices:
        ok = any(type(value) is type(c) and value == c for c in rules.choices)
    else:
        ok = any(_fits(member, value, rules) for member in _members(hint))
    if not ok:
        phrase = _phrase(hint, rules, type(value) is int and abs(value) > INT_LIMIT)
        if isinstance(value, str) and str in _members(hint):
            if "\x00" in value:
                phrase += " without NUL characters"
            elif len(value) > rules.max_chars:
                phrase += f" of at most {rules.max_chars} characters"
        raise UserError(f"{name} must be {phrase}, got {shown(value)}")


def check_fields(obj: Any, prefix: str) -> None:
    """Check every field of a settings dataclass (call it first in ``__post_init__``).

    Args:
        obj: The dataclass instance.
        prefix: The dict parameter it comes from (``training``), which names each field.

    Raises:
        UserError: On the first field whose value is not of its type or out of its range.
    """
    hints = _hints(type(obj))
    for f in fields(obj):
        rules = f.metadata.get("rules", Rules())
        check_value(f"{prefix}.{f.name}", getattr(obj, f.name), hints[f.name], rules)


def int_fields(cls: type) -> tuple[str, ...]:
    """The fields of a settings dataclass typed ``int`` (booleans aside)."""
    hints = _hints(cls)
    return tuple(f.name for f in fields(cls) if hints[f.name] is int)  # type: ignore[arg-type]


def from_pipeline_dict(cls: type[T], values: Any, prefix: str) -> T:
    """``cls(**values)`` after rejecting unknown keys and turning integral floats into ints.

    Args:
        cls: A settings dataclass whose ``__post_init__`` calls :func:`check_fields`.
        values: The pipeline dict (None: all defaults).
        prefix: The dict parameter's name (``training``), naming the keys in messages.

    Raises:
        UserError: If ``values`` is not a mapping, on unknown or non-string keys (listing the
            known ones) or invalid values.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"{prefix} must be a mapping, got {shown(values)}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    odd = [k for k in values if not isinstance(k, str)]
    if odd:
        raise UserError(f"{prefix} keys must be strings, got {shown(odd[0])}")
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown {prefix} setting(s) {shown(unknown)}; known: {sorted(known)}")
    values = dict(values)
    for name in int_fields(cls):
        value = values.get(name)
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
            values[name] = int(value)
    return cls(**values)
