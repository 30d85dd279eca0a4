# Multi-stage build of the tokenstore service.
# Build:  docker build -t tokenstore:0.1.0 .
# Run:    docker compose up   (see compose.yaml; Kubernetes: deploy/README.md)
ARG PYTHON_IMAGE=python:3.11-slim

# --- stage 1: a virtual environment with the service and its runtime dependencies only ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
# No [dev] extra: test and lint tools stay out of the image. pip compiles the .pyc files
# here, since the running container has a read-only file system and cannot write them.
RUN pip install --upgrade pip \
    && pip install .

# --- stage 2: runtime ---
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 tokenstore \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin tokenstore
# Same base image in both stages, so the venv's python symlink resolves here too.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOKENSTORE_HOST=0.0.0.0 \
    TOKENSTORE_PORT=8080 \
    TOKENSTORE_WORKERS=1
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["tokenstore", "healthcheck"]
ENTRYPOINT ["tokenstore"]
CMD ["serve"]
