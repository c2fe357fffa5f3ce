"""Prompt formats: an example rendered with the base model's own chat template, or a plain template.

``template`` (the built-in models' and any model's without a chat template) puts the input into
``prompt_template``. ``chat`` renders the conversation with the tokenizer's chat template: the
system instruction, the earlier turns, the user turn and the generation prompt make the prompt;
the assistant turn exactly as the template renders it after them (its end-of-turn token
included) is the target, so the model learns to end its turn. ``auto`` is ``chat`` when the
tokenizer has a chat template, ``template`` otherwise.

A template without a system role (Gemma's raises on one) gets the system text at the start of
the first user turn, as those model cards recommend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from adaptune.errors import UserError

PROMPT_FORMATS = ("auto", "template", "chat")
ROLES = {"user": "user", "model": "assistant"}
"""Normalised example roles → chat-template roles."""


@dataclass(frozen=True)
class PromptStyle:
    """How prompts are made for one base model: what a version records and the server repeats.

    Attributes:
        format: ``template`` or ``chat`` (resolved: never ``auto``).
        template: The ``prompt_template`` (used by the ``template`` format).
        system_instruction: A system instruction for examples that have none.
        chat_template_sha256: sha256 of the chat template the prompts were rendered with
            (chat format): where they came from, so a changed template is noticed.
    """

    format: str
    template: str
    system_instruction: str = ""
    chat_template_sha256: str = ""

    def to_dict(self) -> dict[str, str]:
        """Plain dict, as stored with a registry version (``prompt_style``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PromptStyle:
        """Read a stored ``prompt_style``."""
        return cls(
            str(values.get("format") or "template"),
            str(values.get("template") or ""),
            str(values.get("system_instruction") or ""),
            str(values.get("chat_template_sha256") or ""),
        )

    @classmethod
    def recorded(cls, metadata: dict[str, Any], default_template: str) -> PromptStyle:
        """The style a registry version's metadata records.

        A version registered before prompt styles existed has only a ``prompt_template``
        (``default_template`` when it recorded none), in the template format.

        Raises:
            UserError: If the recorded format is neither ``template`` nor ``chat``.
        """
        template = metadata.get("prompt_template") or default_template
        stored = metadata.get("prompt_style")
        if not isinstance(stored, dict):
            return cls("template", template)
        style = cls.from_dict(stored)
        if style.format not in ("template", "chat"):
            raise UserError(f"unknown prompt format {style.format!r} recorded")
        return style if style.template else replace(style, template=template)

    def check_template(self, tokenizer: Any, what: str) -> None:
        """Refuse to render with a chat template other than the one the prompts were made with.

        Raises:
            UserError: If the tokenizer's chat template is not the recorded one.
        """
        if self.format != "chat" or not self.chat_template_sha256:
            return
        now = chat_template_sha256(tokenizer)
        if now != self.chat_template_sha256:
            raise UserError(
                f"{what} was tuned with chat template sha256 {self.chat_template_sha256[:12]}, "
                f"but its base model's tokenizer now has {now[:12] or 'none'}: prompts would "
                "differ from tuning"
            )


def chat_template_sha256(tokenizer: Any) -> str:
    """sha256 of the tokenizer's chat template text ("" without one)."""
    from adaptune.hashing import sha256_text

    template = getattr(tokenizer, "chat_template", None)
    return sha256_text(template) if isinstance(template, str) and template else ""


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_prompt_format(requested: str, tokenizer: Any, base_model: str) -> str:
    """``template`` or ``chat`` for ``data.prompt_format`` with this tokenizer.

    Raises:
        UserError: For an unknown format, or ``chat`` with a tokenizer that has no template.
    """
    if requested not in PROMPT_FORMATS:
        raise UserError(
            f"data.prompt_format must be one of {list(PROMPT_FORMATS)}, got {requested!r}"
        )
    if requested == "auto":
        return "chat" if has_chat_template(tokenizer) else "template"
    if requested == "chat" and not has_chat_template(tokenizer):
        raise UserError(
            f"data.prompt_format is chat but the tokenizer of {base_model} has no chat template; "
            "use prompt_format template (or auto)"
        )
    return requested


def conversation(example: dict[str, Any], system_instruction: str = "") -> list[dict[str, str]]:
    """A normalised example's messages up to and including the user turn it answers.

    The example's own system text wins over ``system_instruction``.
    """
    messages = []
    system = example.get("system") or system_instruction
    if system:
        messages.append({"role": "system", "content": system})
    for turn in example.get("context") or []:
        messages.append({"role": ROLES[turn["role"]], "content": turn["text"]})
    messages.append({"role": "user", "content": example["input_text"]})
    return messages


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def without_system_role(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages with the system text moved to the start of the first user turn."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for message in rest:
        if message["role"] == "user":
            message["content"] = f"{system}\n\n{message['content']}"
            break
    return rest


def render_chat_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The conversation as the model sees it before its answer (generation prompt included).

    Raises:
        UserError: If the template cannot render the conversation.
    """
    return _render_either(tokenizer, messages, None)[0]


def render_chat_pair(
    tokenizer: Any, messages: list[dict[str, str]], answer: str
) -> tuple[str, str]:
    """The prompt, and the assistant turn ``answer`` exactly as the template renders it.

    The target is what the whole rendered conversation has after the prompt, so it ends with
    the template's end-of-turn token (and whatever the template puts after it).

    Raises:
        UserError: If the template cannot render the conversation, or renders the conversation
            with its answer so that it does not start with the prompt.
    """
    prompt, whole = _render_either(tokenizer, messages, answer)
    if not whole.startswith(prompt):
        raise UserError(
            "the chat template renders a conversation with its answer differently from the "
            "conversation before it, so the answer cannot be trained on its own; use "
            "data.prompt_format template"
        )
    return prompt, whole[len(prompt) :]


def _render_either(
    tokenizer: Any, messages: list[dict[str, str]], answer: str | None
) -> tuple[str, str]:
    """(prompt, whole): rendered as is, or with the system text moved (no system role)."""
    from jinja2 import TemplateError

    tries = [messages]
    if messages and messages[0]["role"] == "system":
        tries.append(without_system_role(messages))
    failure: Exception | None = None
    for attempt in tries:
        try:
            prompt = _render(tokenizer, attempt, True)
            whole = (
                _render(tokenizer, [*attempt, {"role": "assistant", "content": answer}], False)
                if answer is not None
                else ""
            )
            return prompt, whole
        except TemplateError as exc:
            failure = exc
    raise UserError(f"the base model's chat template cannot render this conversation: {failure}")


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """The special tokens the chat template closes an assistant turn with (none without one).

    Found by rendering a one-turn conversation and its answer: the special tokens after the
    answer's text (``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``, ...).
    """
    if not has_chat_template(tokenizer):
        return []
    answer = "ok"
    try:
        _, target = render_chat_pair(tokenizer, [{"role": "user", "content": "hi"}], answer)
    except UserError:
        return []
    tail = target[target.find(answer) + len(answer) :] if answer in target else target
    special = set(tokenizer.all_special_ids) | {
        i for i, t in tokenizer.added_tokens_decoder.items() if getattr(t, "special", False)
    }
    ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    return [i for i in ids if i in special]


@dataclass(frozen=True)
class ChatRendering:
    """What renders examples in the chat format: the base model's tokenizer and the setting.

    Attributes:
        tokenizer: The base model's Hugging Face tokenizer (it holds the chat template).
        system_instruction: ``data.system_instruction``.
    """

    tokenizer: Any
    system_instruction: str = ""

    def pair(self, example: dict[str, Any]) -> tuple[str, str]:
        """The example's prompt and target as rendered for training.

        Raises:
            UserError: If the template cannot render it.
        """
        messages = conversation(example, self.system_instruction)
        return render_chat_pair(self.tokenizer, messages, example["output_text"])

    def token_counts(self, examples: list[dict[str, Any]]) -> list[tuple[int, int] | str]:
        """Each example's (prompt tokens, target tokens) as training encodes them, or an error.

        Special tokens and the BOS are counted; an example the template cannot render gives
        the reason instead.
        """
        from adaptune.data.encoding import IGNORE_INDEX, encode_pairs

        rendered: list[tuple[str, str] | str] = []
        for example in examples:
            try:
                rendered.append(self.pair(example))
            except UserError as exc:
                rendered.append(str(exc))
        pairs = [
            {"prompt": p, "target": t} for p, t in (r for r in rendered if not isinstance(r, str))
        ]
        # Encoded exactly as tuning encodes them (EOS added where the turn does not end with it),
        # with no length cut.
        encoded = iter(encode_pairs(self.tokenizer, pairs, "causal", 1 << 62))
        found: list[tuple[int, int] | str] = []
        for r in rendered:
            if isinstance(r, str):
                found.append(r)
                continue
            example = next(encoded)
            prompt = sum(1 for label in example.labels if label == IGNORE_INDEX)
            found.append((prompt, len(example.input_ids) - prompt))
        return found
