"""Evaluation: batched generation, text metrics, and the gate."""
