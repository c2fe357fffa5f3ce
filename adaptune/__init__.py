"""adaptune: reproducible adapter tuning, one compiled Kubeflow DAG from laptop to Vertex AI."""

__version__ = "0.1.0"
