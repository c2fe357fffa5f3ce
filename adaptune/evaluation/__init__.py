"""Evaluation: batched generation, text metrics, and the deploy gate."""
