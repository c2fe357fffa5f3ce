"""Vertex AI: settings, input staging, pipeline jobs, schedules, model upload, endpoints, lineage.

Request bodies are built by plain functions; the Google clients are imported only where a call
is made, so ``--dry-run`` and the tests of the builders need no cloud access.
"""
