# The component image: every task of the compiled pipeline runs in it (pipelines/profiles.py names
# it at compile time). Components use install_kfp_package=False, so this image must hold kfp and
# adaptune already; the project is installed from this source tree, at its pinned version.
#
#   docker build --build-arg VARIANT=cpu  -t IMAGE:0.1.0 .        (profiles local, vertex-cpu)
#   docker build --build-arg VARIANT=cu128 -t IMAGE:0.1.0-cuda .  (profile vertex-gpu)
#
# `make image` builds and pushes both (IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/adaptune).
# The CUDA wheel of torch carries its own CUDA runtime; the GPU node provides the driver.
FROM python:3.11-slim

ARG VARIANT=cpu
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /opt/adaptune

COPY pyproject.toml README.md ./
# torch's pin lives in pyproject.toml only; its wheel comes from the index for VARIANT.
RUN pip install --index-url "https://download.pytorch.org/whl/${VARIANT}" \
        "$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')"
COPY adaptune ./adaptune
COPY components ./components
COPY pipelines ./pipelines
RUN pip install . && python -c "import adaptune, kfp, torch; print(adaptune.__version__, kfp.__version__, torch.__version__)"

ENTRYPOINT ["python"]
