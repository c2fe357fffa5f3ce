"""Base models: the built-in tiny models and Hugging Face checkpoints on disk."""

from adaptune.models.loading import BaseModel, load_base_model

__all__ = ["BaseModel", "load_base_model"]
