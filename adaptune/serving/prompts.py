"""A served version's prompt: the user's text inside the template the adapter was tuned with."""

from __future__ import annotations

from adaptune.data.formatting import DEFAULT_TEMPLATE, apply_template
from adaptune.registry import RegisteredVersion


def prompt_template(version: RegisteredVersion) -> str:
    """The version's ``prompt_template`` (the pipeline's default when it recorded none)."""
    return version.metadata.get("prompt_template") or DEFAULT_TEMPLATE


def build_prompt(version: RegisteredVersion, text: str, raw: bool = False) -> str:
    """``text`` as the model sees it: templated as in tuning, or unchanged when ``raw``."""
    return text if raw else apply_template(prompt_template(version), text)
