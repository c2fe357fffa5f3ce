"""A local run of the compiled pipeline: parameters, kfp.local, task records, summary, lineage."""
