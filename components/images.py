"""The one container image every component runs in (built by the Dockerfile).

Components are declared with ``install_kfp_package=False``: the image already holds kfp and
adaptune, so nothing is pip-installed when a task starts. This is the ``local`` profile's image;
another compile profile (``pipelines/profiles.py``) replaces it in the compiled YAML.
"""

IMAGE = "ghcr.io/adaptune/adaptune:0.1.0"
