"""The predict request and response, in Vertex AI's format, and the OpenAI chat completion.

A request is ``{"instances": [...], "parameters": {"maxOutputTokens": 64, "temperature": 0}}``;
each instance is one of three shapes: ``{"prompt": "..."}`` (one user turn), OpenAI-style
``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}`` or Gemini-style
``{"contents": [{"role": "user"|"model", "parts": [{"text": "..."}]}], "systemInstruction":
{"parts": [{"text": "..."}]}}``; a conversation ends with the user turn to answer. Parameter
names are accepted as Vertex AI spells them (camelCase) or as Hugging Face does
(``max_new_tokens``). Unknown fields and wrong types are refused, so a typo is an error rather
than a silent default.

Every refusal is a 400 naming the field: numbers are finite and in range (``1e999`` is
infinity, and Python's JSON reader takes ``NaN``), texts are Unicode without lone surrogates
(a JSON escape such as U+D800 alone, which no tokenizer can encode), the user turn to answer
has some visible text, and at most ``MAX_STOP_SEQUENCES`` stop sequences of at most
``MAX_STOP_LENGTH`` characters are given. A ``temperature`` above 0 but below
``GREEDY_BELOW`` (1e-3, in ``generation_options.py``) decodes greedily, as 0 does.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, model_validator

from adaptune.serving.prompts import Conversation

STRICT = ConfigDict(extra="forbid", strict=True)


MAX_STOP_SEQUENCES = 16
"""Most stop sequences a request may give (OpenAI allows 4, Vertex AI 16)."""
MAX_STOP_LENGTH = 256
"""Longest stop sequence, in characters (matching one costs time with its length)."""
MAX_TOP_K = 1_000_000
"""Largest ``topK`` (beyond any vocabulary: every token is kept)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_INVISIBLE = {"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}


def unicode_text(text: str) -> str:
    """``text`` if it is valid Unicode (no lone surrogate, which no tokenizer can encode)."""
    found = _SURROGATE.search(text)
    if found:
        raise ValueError(
            f"holds a lone surrogate (U+{ord(found.group()):04X}) at character {found.start()}: "
            "send valid Unicode text"
        )
    return text


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has a character other than whitespace, control or format characters."""
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE for ch in text)


def visible_text(text: str) -> str:
    """``text`` if it has visible text (the turn a model answers cannot be empty)."""
    if not has_visible_text(text):
        raise ValueError(
            "is empty"
            + (" once whitespace and invisible characters are left out" if text else "")
            + ": send the text to answer"
        )
    return text


Text = Annotated[str, AfterValidator(unicode_text)]
"""A text of a request: valid Unicode."""
StopSequence = Annotated[Text, Field(max_length=MAX_STOP_LENGTH)]
"""One stop sequence."""
Number = Annotated[float, Field(allow_inf_nan=False)]
"""A finite number (``NaN`` and ``1e999``, infinity, are refused)."""


class Message(BaseModel):
    """One OpenAI-style chat message."""

    model_config = STRICT

    role: Literal["system", "user", "assistant"]
    content: Text


class Part(BaseModel):
    """One Gemini part (text only)."""

    model_config = STRICT

    text: Text


class Content(BaseModel):
    """One Gemini turn; its parts' texts are joined, as in training data."""

    model_config = STRICT

    role: Literal["user", "model"]
    parts: list[Part] = Field(min_length=1)

    def text(self) -> str:
        """The parts' texts, joined."""
        return "".join(part.text for part in self.parts)


class SystemInstruction(BaseModel):
    """Gemini's ``systemInstruction`` (a role, when sent, is ignored as Gemini does)."""

    model_config = STRICT

    parts: list[Part] = Field(min_length=1)
    role: Text | None = None


def messages_conversation(messages: list[Message]) -> Conversation:
    """The conversation of OpenAI-style messages (see :meth:`Conversation.from_messages`)."""
    return Conversation.from_messages([(m.role, m.content) for m in messages])


def checked_turn(conversation: Conversation, where: str) -> Conversation:
    """``conversation`` if the user turn to answer has visible text (``where`` names it).

    Raises:
        ValueError: If that turn is empty or holds only whitespace and invisible characters.
    """
    try:
        visible_text(conversation.input_text)
    except ValueError as exc:
        raise ValueError(f"{where} {exc}") from None
    return conversation


class Instance(BaseModel):
    """One request to answer: exactly one of ``prompt``, ``messages`` or ``contents``.

    Attributes:
        prompt: The user's text; the version's prompt template (or chat template) is put
            around it.
        raw: Send ``prompt`` to the model as it is, without any template.
        messages: OpenAI-style turns, ending with the user's.
        contents: Gemini-style turns, ending with the user's.
        systemInstruction: Gemini-style system text (with ``contents``).
    """

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    prompt: Text | None = None
    raw: bool = False
    messages: list[Message] | None = None
    contents: list[Content] | None = None
    system_instruction: SystemInstruction | None = Field(
        default=None, validation_alias=AliasChoices("systemInstruction", "system_instruction")
    )

    @model_validator(mode="after")
    def _one_shape(self) -> Instance:
        shapes = ("prompt", "messages", "contents")
        given = [name for name in shapes if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "an instance holds exactly one of prompt, messages or contents, got "
                + (" and ".join(given) if given else "none")
            )
        if self.raw and self.prompt is None:
            raise ValueError("raw applies to a prompt only")
        if self.system_instruction is not None and self.contents is None:
            raise ValueError("systemInstruction goes with contents (messages have a system role)")
        where = {
            "prompt": "the prompt",
            "messages": "the last user message",
            "contents": "the last user turn",
        }[given[0]]
        checked_turn(self.conversation(), where)  # and the turns' order
        return self

    def conversation(self, raw: bool = False) -> Conversation:
        """The request as a conversation (``raw``: a prompt is sent as it is)."""
        if self.prompt is not None:
            return Conversation.from_prompt(self.prompt, raw=self.raw or raw)
        if self.messages is not None:
            return messages_conversation(self.messages)
        system = self.system_instruction
        return Conversation.from_contents(
            [(c.role, c.text()) for c in self.contents or []],
            "".join(p.text for p in system.parts) if system is not None else None,
        )


class Parameters(BaseModel):
    """Decoding settings for every instance of the request."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    max_new_tokens: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("maxOutputTokens", "max_new_tokens", "maxNewTokens"),
    )
    temperature: Number = Field(default=0.0, ge=0.0, le=2.0)
    top_p: Number = Field(
        default=1.0, gt=0.0, le=1.0, validation_alias=AliasChoices("topP", "top_p")
    )
    top_k: int = Field(
        default=0, ge=0, le=MAX_TOP_K, validation_alias=AliasChoices("topK", "top_k")
    )
    raw_prompt: bool = Field(
        default=False, validation_alias=AliasChoices("rawPrompt", "raw_prompt")
    )
    stop_sequences: list[StopSequence] = Field(
        default_factory=list,
        max_length=MAX_STOP_SEQUENCES,
        validation_alias=AliasChoices("stopSequences", "stop_sequences"),
    )

    def stop(self) -> tuple[str, ...]:
        """The stop sequences (empty strings dropped)."""
        return tuple(s for s in self.stop_sequences if s)


class PredictRequest(BaseModel):
    """``POST .../endpoints/{model}:predict`` body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instances: list[Instance] = Field(min_length=1)
    parameters: Parameters = Field(default_factory=Parameters)


class Prediction(BaseModel):
    """One answer (``content``, as Vertex AI's text models name it)."""

    content: str


class PredictResponse(BaseModel):
    """Vertex AI's ``PredictResponse`` fields.

    Attributes:
        predictions: One per instance, in order.
        deployedModelId: Which deployment answered (``AIP_DEPLOYED_MODEL_ID``, or ``model@vN``).
        model: The registry model name.
        modelDisplayName: The same name.
        modelVersionId: The version number that answered, as a string.
    """

    predictions: list[Prediction]
    deployedModelId: str
    model: str
    modelDisplayName: str
    modelVersionId: str


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` body (OpenAI's fields that apply; one choice only).

    ``temperature`` defaults to 0 (greedy), as on the predict route.
    """

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    model: Text
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("max_tokens", "max_completion_tokens")
    )
    temperature: Number = Field(default=0.0, ge=0.0, le=2.0)
    top_p: Number = Field(default=1.0, gt=0.0, le=1.0)
    stop: (
        StopSequence | Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)] | None
    ) = None
    n: int = 1
    stream: bool = False

    @model_validator(mode="after")
    def _supported(self) -> ChatCompletionRequest:
        if self.n != 1:
            raise ValueError(f"n must be 1 (one choice per request), got {self.n}")
        if self.stream:
            raise ValueError("stream is not supported; send stream false (or leave it out)")
        checked_turn(messages_conversation(self.messages), "the last user message")
        return self

    def stop_sequences(self) -> tuple[str, ...]:
        """``stop`` as a tuple (empty strings dropped)."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return tuple(s for s in stop if s)


class ChatMessage(BaseModel):
    """The answer's message."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """One choice (``stop``: the answer ended; ``length``: it used every token allowed)."""

    index: int
    message: ChatMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    """Tokens of the prompt as the model saw it and of the answer."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionResponse(BaseModel):
    """OpenAI's ``chat.completion``; ``model`` is the ``name@vN`` that answered."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
