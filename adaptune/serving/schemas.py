"""The predict request and response, in Vertex AI's format, and the OpenAI chat completion.

A request is ``{"instances": [...], "parameters": {"maxOutputTokens": 64, "temperature": 0}}``;
each instance is one of three shapes: ``{"prompt": "..."}`` (one user turn), OpenAI-style
``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}`` or Gemini-style
``{"contents": [{"role": "user"|"model", "parts": [{"text": "..."}]}], "systemInstruction":
{"parts": [{"text": "..."}]}}``; a conversation ends with the user turn to answer. Parameter
names are accepted as Vertex AI spells them (camelCase) or as Hugging Face does
(``max_new_tokens``). Unknown fields and wrong types are refused, so a typo is an error rather
than a silent default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from adaptune.serving.prompts import Conversation

STRICT = ConfigDict(extra="forbid", strict=True)


MAX_STOP_SEQUENCES = 16
"""Most stop sequences a request may give (OpenAI allows 4, Vertex AI 16)."""


class Message(BaseModel):
    """One OpenAI-style chat message."""

    model_config = STRICT

    role: Literal["system", "user", "assistant"]
    content: str


class Part(BaseModel):
    """One Gemini part (text only)."""

    model_config = STRICT

    text: str


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
    role: str | None = None


def messages_conversation(messages: list[Message]) -> Conversation:
    """The conversation of OpenAI-style messages (see :meth:`Conversation.from_messages`)."""
    return Conversation.from_messages([(m.role, m.content) for m in messages])


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

    prompt: str | None = None
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
        self.conversation()  # the turns' order is checked here
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
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(
        default=1.0, gt=0.0, le=1.0, validation_alias=AliasChoices("topP", "top_p")
    )
    top_k: int = Field(default=0, ge=0, validation_alias=AliasChoices("topK", "top_k"))
    raw_prompt: bool = Field(
        default=False, validation_alias=AliasChoices("rawPrompt", "raw_prompt")
    )
    stop_sequences: list[str] = Field(
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

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("max_tokens", "max_completion_tokens")
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False

    @model_validator(mode="after")
    def _supported(self) -> ChatCompletionRequest:
        if self.n != 1:
            raise ValueError(f"n must be 1 (one choice per request), got {self.n}")
        if self.stream:
            raise ValueError("stream is not supported; send stream false (or leave it out)")
        messages_conversation(self.messages)  # the turns' order is checked here
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
