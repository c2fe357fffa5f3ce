"""Adapter tuning: LoRA settings, encoding, length-grouped batching and the training loop."""
