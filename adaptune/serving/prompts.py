"""A served version's prompt: the request rendered exactly as tuning rendered its examples.

A request (one prompt, OpenAI-style ``messages`` or Gemini-style ``contents``) becomes a
:class:`Conversation`, the shape of a normalised training example: an optional system text,
earlier user/model turns and the user turn to answer. :func:`build_prompt` then renders it with
the version's prompt style, as :mod:`adaptune.data.formatting` did in tuning: the ``template``
format puts each turn into the version's ``prompt_template``; the ``chat`` format renders the
conversation with the base model's chat template (the version's ``system_instruction`` when the
request brings no system text).

The turns follow the training data's chat rule: an optional system message first, then turns
alternating user, model (``assistant``), starting with a user turn; a request ends with the user
turn to answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adaptune.data import chat
from adaptune.data.formatting import DEFAULT_TEMPLATE, styled_prompt
from adaptune.errors import UserError
from adaptune.registry import RegisteredVersion

OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "model"}
GEMINI_ROLES = {"user": "user", "model": "model"}


class ConversationError(UserError, ValueError):
    """A request's turns break the chat rule (a ``ValueError`` too, so pydantic reports it)."""


@dataclass(frozen=True)
class Conversation:
    """One request, as a normalised example holds it.

    Attributes:
        input_text: The user turn to answer (or, when ``raw``, the model's whole input).
        system: The request's system text (None: the version's ``system_instruction``).
        context: Earlier turns, ``(role, text)`` with role ``user`` or ``model``, alternating.
        raw: Send ``input_text`` to the model as it is, without template or chat template.
    """

    input_text: str
    system: str | None = None
    context: tuple[tuple[str, str], ...] = ()
    raw: bool = False

    @classmethod
    def from_prompt(cls, text: str, raw: bool = False) -> Conversation:
        """One user turn."""
        return cls(text, raw=raw)

    @classmethod
    def from_messages(cls, messages: Sequence[tuple[str, str]]) -> Conversation:
        """OpenAI-style ``(role, content)`` turns: ``system`` (first only), ``user``, ``assistant``.

        Raises:
            ConversationError: On an unknown role, a misplaced system message, turns that do not
                alternate, or a last turn that is not the user's.
        """
        system = None
        turns = []
        for index, (role, content) in enumerate(messages):
            if role not in OPENAI_ROLES:
                raise ConversationError(
                    f"messages[{index}]: unknown role {role!r}; expected one of "
                    f"{sorted(OPENAI_ROLES)}"
                )
            if role == "system":
                if index != 0:
                    raise ConversationError(f"messages[{index}]: a system message must come first")
                system = content
                continue
            turns.append((OPENAI_ROLES[role], content))
        return cls._from_turns(turns, system, "messages")

    @classmethod
    def from_contents(
        cls, contents: Sequence[tuple[str, str]], system: str | None = None
    ) -> Conversation:
        """Gemini-style ``(role, text)`` contents (roles ``user``, ``model``) and system text.

        Raises:
            ConversationError: On an unknown role, turns that do not alternate, or a last turn
                that is not the user's.
        """
        for index, (role, _) in enumerate(contents):
            if role not in GEMINI_ROLES:
                raise ConversationError(
                    f"contents[{index}]: unknown role {role!r}; expected one of "
                    f"{sorted(GEMINI_ROLES)}"
                )
        return cls._from_turns(list(contents), system, "contents")

    @classmethod
    def _from_turns(
        cls, turns: list[tuple[str, str]], system: str | None, field: str
    ) -> Conversation:
        if not turns:
            raise ConversationError(f"{field} holds no user turn")
        for index, (role, _) in enumerate(turns):
            expected = "user" if index % 2 == 0 else "model"
            if role != expected:
                raise ConversationError(
                    f"{field}: turn {index + 1} is {role!r} but {expected!r} was expected "
                    "(turns alternate user, model, starting with user)"
                )
        if turns[-1][0] != "user":
            raise ConversationError(f"{field}: the last turn must be the user's, to be answered")
        return cls(turns[-1][1], system, tuple(turns[:-1]))

    def example(self) -> dict[str, Any]:
        """The normalised example tuning would have rendered (without its output)."""
        example: dict[str, Any] = {"input_text": self.input_text}
        if self.system is not None:
            example["system"] = self.system
        if self.context:
            example["context"] = [{"role": role, "text": text} for role, text in self.context]
        return example

    def turns(self) -> list[tuple[str, str]]:
        """``(role, text)`` of every turn, the system text first when there is one."""
        system = [("system", self.system)] if self.system is not None else []
        return [*system, *self.context, ("user", self.input_text)]


def prompt_style(version: RegisteredVersion) -> chat.PromptStyle:
    """How the version's prompts were made in tuning.

    Its recorded ``prompt_style``; a version registered before prompt styles existed has only a
    ``prompt_template`` (the pipeline's default when it recorded none), in the template format.

    Raises:
        UserError: If the recorded format is neither ``template`` nor ``chat``.
    """
    try:
        return chat.PromptStyle.recorded(version.metadata, DEFAULT_TEMPLATE)
    except UserError as exc:
        raise UserError(f"{version.ref}: {exc}") from None


def needs_tokenizer(version: RegisteredVersion, conversations: Sequence[Conversation]) -> bool:
    """Whether rendering ``conversations`` for ``version`` needs the base model's tokenizer."""
    return prompt_style(version).format == "chat" and not all(c.raw for c in conversations)


def build_prompt(
    version: RegisteredVersion, conversation: Conversation, tokenizer: Any = None
) -> str:
    """``conversation`` as the model sees it: rendered as in tuning, or unchanged when raw.

    Args:
        version: The version that answers (its prompt style is used).
        conversation: The request.
        tokenizer: The base model's tokenizer (needed by the chat format only).

    Raises:
        UserError: If the chat template cannot render the conversation.
    """
    if conversation.raw:
        return conversation.input_text
    style = prompt_style(version)
    if tokenizer is not None:
        style.check_template(tokenizer, version.ref)
    return styled_prompt(conversation.example(), style, tokenizer)
