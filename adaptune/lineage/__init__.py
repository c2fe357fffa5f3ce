"""Lineage: a local metadata store (after ML Metadata), run manifests and reproduction."""
