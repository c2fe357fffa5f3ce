"""The tuning formats adaptune reads, and how each record becomes normalised examples.

A normalised example is a dict with ``input_text`` and ``output_text`` (strings), plus
``system`` (a string) and ``context`` (earlier turns, ``[{"role": "user"|"model", "text"}]``)
when the record had them. Identical content in any format gives identical examples.

The chat rule: a conversation is an optional system instruction, then turns alternating
user, model (OpenAI: ``assistant``), starting with a user turn and ending with a model turn.
Every model turn becomes one example: its text is the output, the user turn just before it is
the input, and every earlier turn is the context. A model turn with ``weight: 0`` (OpenAI) is
context only: it yields no example but stays in the context of later ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adaptune.data.problems import (
    BAD_ROLE_ORDER,
    EMPTY_FIELD,
    INVISIBLE_ONLY,
    MISSING_FIELD,
    NO_TARGET_TURN,
    NUL_CHARACTER,
    UNKNOWN_ROLE,
    WRONG_TYPE,
    RecordProblem,
)
from adaptune.data.visible_text import has_visible, nul_position

Example = dict[str, Any]

VERTEX_TEXT = "vertex_text"
GEMINI_CHAT = "gemini_chat"
OPENAI_CHAT = "openai_chat"
PROMPT_COMPLETION = "prompt_completion"
CSV = "csv"
PARQUET = "parquet"
JSON_FORMATS = (VERTEX_TEXT, GEMINI_CHAT, OPENAI_CHAT, PROMPT_COMPLETION)
TABLE_FORMATS = (CSV, PARQUET)
TABLE_EXTENSIONS = {".csv": CSV, ".parquet": PARQUET, ".pq": PARQUET}
FORMAT_KEYS = {
    OPENAI_CHAT: "messages",
    GEMINI_CHAT: "contents",
    VERTEX_TEXT: "input_text/output_text",
    PROMPT_COMPLETION: "prompt/completion",
}
OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "model"}
GEMINI_ROLES = {"user": "user", "model": "model"}


def detect_format(obj: Any) -> str | None:
    """The JSON format a parsed record looks like, by its keys, or None."""
    if not isinstance(obj, dict):
        return None
    if "messages" in obj:
        return OPENAI_CHAT
    if "contents" in obj:
        return GEMINI_CHAT
    if "input_text" in obj or "output_text" in obj:
        return VERTEX_TEXT
    if "prompt" in obj or "completion" in obj:
        return PROMPT_COMPLETION
    return None


def type_name(value: Any) -> str:
    """A JSON-ish name for a value's type, for messages."""
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def text_field(obj: dict[str, Any], name: str, what: str = "field") -> str:
    """``obj[name]`` as a string a model can read, or a :class:`RecordProblem` saying why not.

    Not a string, empty or whitespace, holding a NUL, or made only of invisible characters
    (:mod:`adaptune.data.visible_text`): each has its own category.
    """
    if name not in obj or obj[name] is None:
        raise RecordProblem(MISSING_FIELD, f"missing {what} '{name}'")
    value = obj[name]
    if type(value) is not str:
        raise RecordProblem(
            WRONG_TYPE, f"{what} '{name}' must be a string, got {type(value).__name__}"
        )
    if not value or value.isspace():
        raise RecordProblem(EMPTY_FIELD, f"{what} '{name}' is empty")
    nul = nul_position(value)
    if nul >= 0:
        raise RecordProblem(
            NUL_CHARACTER, f"{what} '{name}' holds a NUL character (at character {nul})"
        )
    if not has_visible(value):
        raise RecordProblem(
            INVISIBLE_ONLY,
            f"{what} '{name}' has only invisible characters (zero-width, format or control "
            "characters and whitespace)",
        )
    return value


def expect_object(obj: Any) -> dict[str, Any]:
    """``obj`` if it is a JSON object, else a ``wrong_type`` problem."""
    if not isinstance(obj, dict):
        raise RecordProblem(WRONG_TYPE, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def pair_example(obj: Any, input_name: str, output_name: str, what: str = "field") -> Example:
    """One example from a record with an input and an output field."""
    obj = expect_object(obj)
    a = obj.get(input_name)
    b = obj.get(output_name)
    # Fast path: both fields are strings with a visible character and no NUL.
    if (
        type(a) is str
        and type(b) is str
        and has_visible(a)
        and has_visible(b)
        and "\x00" not in a
        and "\x00" not in b
    ):
        return {"input_text": a, "output_text": b}
    return {
        "input_text": text_field(obj, input_name, what),
        "output_text": text_field(obj, output_name, what),
    }


def vertex_text_examples(obj: Any) -> list[Example]:
    """Vertex AI text: ``{"input_text": ..., "output_text": ...}``."""
    return [pair_example(obj, "input_text", "output_text")]


def prompt_completion_examples(obj: Any) -> list[Example]:
    """``{"prompt": ..., "completion": ...}``."""
    return [pair_example(obj, "prompt", "completion")]


def chat_examples(turns: list[tuple[str, str, bool]], system: str | None) -> list[Example]:
    """Examples from checked turns ``(role, text, is_target)``; roles are ``user``/``model``.

    Raises:
        RecordProblem: On a bad role order or when no model turn is a target.
    """
    if not turns:
        raise RecordProblem(EMPTY_FIELD, "the conversation has no turns")
    for index, (role, _, _) in enumerate(turns):
        expected = "user" if index % 2 == 0 else "model"
        if role != expected:
            raise RecordProblem(
                BAD_ROLE_ORDER,
                f"turn {index + 1} is '{role}' but '{expected}' was expected "
                "(turns alternate user, model, starting with user)",
            )
    if turns[-1][0] != "model":
        raise RecordProblem(BAD_ROLE_ORDER, "the conversation ends with a user turn")
    examples = []
    for index, (role, text, is_target) in enumerate(turns):
        if role != "model" or not is_target:
            continue
        example: Example = {"input_text": turns[index - 1][1], "output_text": text}
        if system is not None:
            example["system"] = system
        if index > 1:
            example["context"] = [{"role": r, "text": t} for r, t, _ in turns[: index - 1]]
        examples.append(example)
    if not examples:
        raise RecordProblem(
            NO_TARGET_TURN, "no model/assistant turn to learn from (all have weight 0)"
        )
    return examples


def role_of(message: dict[str, Any], roles: dict[str, str], where: str) -> str:
    """The normalised role of a message or content, checked against ``roles``."""
    if "role" not in message:
        raise RecordProblem(MISSING_FIELD, f"{where}: missing field 'role'")
    role = message["role"]
    if type(role) is not str:
        raise RecordProblem(WRONG_TYPE, f"{where}: 'role' must be a string, got {type_name(role)}")
    if role not in roles:
        raise RecordProblem(
            UNKNOWN_ROLE, f"{where}: unknown role {role!r}; expected one of {sorted(roles)}"
        )
    return roles[role]


def required_array(obj: dict[str, Any], name: str) -> list[Any]:
    """The array in field ``name``; a missing field or another type is a record problem."""
    value = obj.get(name)
    if value is None:
        raise RecordProblem(MISSING_FIELD, f"missing field '{name}'")
    if not isinstance(value, list):
        raise RecordProblem(WRONG_TYPE, f"field '{name}' must be an array, got {type_name(value)}")
    return value


def openai_chat_examples(obj: Any) -> list[Example]:
    """OpenAI chat: ``{"messages": [{"role", "content", "weight"?}]}``."""
    obj = expect_object(obj)
    messages = required_array(obj, "messages")
    system = None
    turns: list[tuple[str, str, bool]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RecordProblem(WRONG_TYPE, f"{where} must be an object, got {type_name(message)}")
        role = role_of(message, OPENAI_ROLES, where)
        content = text_field(message, "content", f"{where} field")
        weight = message.get("weight", 1)
        if isinstance(weight, bool) or weight not in (0, 1):
            raise RecordProblem(WRONG_TYPE, f"{where}: 'weight' must be 0 or 1, got {weight!r}")
        if role == "system":
            if index != 0:
                raise RecordProblem(BAD_ROLE_ORDER, f"{where}: a system message must come first")
            system = content
            continue
        if "weight" in message and role != "model":
            raise RecordProblem(WRONG_TYPE, f"{where}: 'weight' is only allowed on assistant turns")
        turns.append((role, content, weight == 1))
    return chat_examples(turns, system)


def parts_text(content: dict[str, Any], where: str) -> str:
    """The text of a Gemini content's ``parts``, joined."""
    if "parts" not in content:
        raise RecordProblem(MISSING_FIELD, f"{where}: missing field 'parts'")
    parts = content["parts"]
    if not isinstance(parts, list):
        raise RecordProblem(
            WRONG_TYPE, f"{where}: 'parts' must be an array, got {type_name(parts)}"
        )
    if not parts:
        raise RecordProblem(EMPTY_FIELD, f"{where}: 'parts' is empty")
    texts = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise RecordProblem(
                WRONG_TYPE, f"{where}.parts[{index}] must be an object, got {type_name(part)}"
            )
        texts.append(text_field(part, "text", f"{where}.parts[{index}] field"))
    return "".join(texts)


def gemini_chat_examples(obj: Any) -> list[Example]:
    """Gemini chat: ``{"systemInstruction"?, "contents": [{"role", "parts": [{"text"}]}]}``."""
    obj = expect_object(obj)
    contents = required_array(obj, "contents")
    system = None
    if obj.get("systemInstruction") is not None:
        instruction = obj["systemInstruction"]
        if not isinstance(instruction, dict):
            raise RecordProblem(
                WRONG_TYPE,
                f"field 'systemInstruction' must be an object, got {type_name(instruction)}",
            )
        system = parts_text(instruction, "systemInstruction")
    turns = []
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, dict):
            raise RecordProblem(WRONG_TYPE, f"{where} must be an object, got {type_name(content)}")
        role = role_of(content, GEMINI_ROLES, where)
        turns.append((role, parts_text(content, where), True))
    return chat_examples(turns, system)


def table_row_examples(input_column: str, output_column: str) -> Callable[[Any], list[Example]]:
    """A normaliser for CSV/Parquet rows with the given column mapping."""

    def examples(row: Any) -> list[Example]:
        return [pair_example(row, input_column, output_column, "column")]

    return examples


NORMALISERS: dict[str, Callable[[Any], list[Example]]] = {
    VERTEX_TEXT: vertex_text_examples,
    GEMINI_CHAT: gemini_chat_examples,
    OPENAI_CHAT: openai_chat_examples,
    PROMPT_COMPLETION: prompt_completion_examples,
}


def input_pieces(example: Example) -> list[str]:
    """The texts that make up an example's input: system, context turns, then the input."""
    pieces = [example["system"]] if "system" in example else []
    pieces.extend(turn["text"] for turn in example.get("context", ()))
    pieces.append(example["input_text"])
    return pieces


def input_places(example: Example) -> list[tuple[str | int, str]]:
    """The input's texts with where each is: ``"system"``, a context turn's index, ``"input"``."""
    places: list[tuple[str | int, str]] = []
    if "system" in example:
        places.append(("system", example["system"]))
    places.extend(enumerate(turn["text"] for turn in example.get("context", ())))
    places.append(("input", example["input_text"]))
    return places


def with_text(example: Example, where: str | int, text: str) -> Example:
    """``example`` with the text at ``where`` (see :func:`input_places`, or ``"output"``)."""
    changed = dict(example)
    if where == "output":
        changed["output_text"] = text
    elif where == "input":
        changed["input_text"] = text
    elif where == "system":
        changed["system"] = text
    else:
        context = [dict(turn) for turn in example["context"]]
        context[int(where)]["text"] = text
        changed["context"] = context
    return changed


def example_key(example: Example) -> tuple[Any, ...]:
    """A hashable key of the whole example (two examples are duplicates iff keys are equal)."""
    return (*input_key(example), example["output_text"])


def input_key(example: Example) -> tuple[Any, ...]:
    """A hashable key of an example's input side (system, context and input)."""
    context = example.get("context")
    return (
        example.get("system"),
        tuple((t["role"], t["text"]) for t in context) if context else None,
        example["input_text"],
    )
