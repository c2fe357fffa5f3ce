"""Lineage: a metadata store (after ML Metadata), run manifests, the task recorder, queries."""
