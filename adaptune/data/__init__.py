"""Datasets: the data contract (formats, sources, checks, report) and prompt/target formatting.

Modules: ``settings`` (the ``data`` dict), ``formats`` (records to normalised examples),
``sources`` (paths, globs, ``gs://``), ``records`` (streaming JSONL/CSV/Parquet readers),
``problems`` (categories), ``token_counting``, ``validation``, ``report``, ``formatting``,
``jsonl``.
"""
