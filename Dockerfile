# The component image: every task of the compiled pipeline runs in it (components/images.py).
# Components use install_kfp_package=False, so this image must hold kfp and adaptune already.
# CPU variant; the CUDA variant and `make image` come with the Vertex AI work.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /opt/adaptune

RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY adaptune ./adaptune
COPY components ./components
COPY pipelines ./pipelines
RUN pip install .

ENTRYPOINT ["python"]
