"""Thin KFP components: each imports ``adaptune`` inside its body and calls one function."""
