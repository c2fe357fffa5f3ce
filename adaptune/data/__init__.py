"""Datasets: validation of text-to-text JSONL and formatting into prompt/target pairs."""
