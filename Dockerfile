# syntax=docker/dockerfile:1
# One image for every role of the deployment (deploy/compose.yaml): the code
# server that runs the builds, the Dagster webserver and the Dagster daemon.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mfn_core ./mfn_core
COPY mfn_pipeline ./mfn_pipeline
RUN python -m venv /opt/mfn \
    && /opt/mfn/bin/pip install --no-cache-dir ".[deploy]"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/mfn/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/srv/mfn/dagster_home \
    MFN_ENV=prod \
    MFN_CONFIG_DIR=/srv/mfn/configs \
    MFN_WAREHOUSE=/srv/mfn/data/warehouse \
    MFN_CATALOG=/srv/mfn/data/mfn.duckdb \
    NUMBA_CACHE_DIR=/srv/mfn/numba_cache \
    MPLCONFIGDIR=/srv/mfn/matplotlib
RUN groupadd --system --gid 10001 mfn \
    && useradd --system --uid 10001 --gid mfn --home-dir /srv/mfn --no-create-home mfn \
    && mkdir -p /srv/mfn/dagster_home/compute_logs /srv/mfn/data /srv/mfn/numba_cache \
        /srv/mfn/matplotlib \
    && chown -R mfn:mfn /srv/mfn/dagster_home /srv/mfn/data /srv/mfn/numba_cache \
        /srv/mfn/matplotlib
COPY --from=build /opt/mfn /opt/mfn
WORKDIR /srv/mfn
# Configuration and instance settings belong to root: the service cannot rewrite them.
COPY configs ./configs
COPY deploy/dagster.yaml ./dagster_home/dagster.yaml
COPY deploy/workspace.yaml ./workspace.yaml
USER 10001:10001
# Compile the numba kernels once into the image so no container pays the JIT.
RUN python -m mfn_core /srv/mfn/configs/presets/small.yaml > /dev/null
EXPOSE 3000 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/server_info', timeout=4)"]
CMD ["dagster-webserver", "--host", "0.0.0.0", "--port", "3000", "--workspace", "/srv/mfn/workspace.yaml"]
