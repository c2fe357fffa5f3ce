"""The local model registry: models by name, immutable numbered versions."""
