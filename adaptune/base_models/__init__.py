"""Base models: the built-in tiny models and Hugging Face checkpoints on disk.

``BaseModel`` and ``load_base_model`` are imported on first use, so that a submodule which
needs no torch (``adaptune.base_models.tokenizer``) can be imported without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BaseModel", "load_base_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from adaptune.base_models import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
