# syntax=docker/dockerfile:1
# Multi-stage build of the tokenstore service (README: "Container image").
# Build:  docker build -t tokenstore:0.1.0 .
#         podman build --format docker -t tokenstore:0.1.0 .   (OCI format drops HEALTHCHECK)
# Run:    docker compose up   (see compose.yaml; Kubernetes: deploy/README.md)
# Behind a TLS-intercepting proxy, give pip its CA bundle as a build secret (never baked in):
#         --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt
# The base is pinned by digest (a multi-arch index); how to bump it: README, "Container image".
# It is Debian 12's Python 3.11: tests/test_image.py builds with a debootstrap copy of it
# (scripts/base-image) through this same argument.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# --- stage 1: the service and its locked runtime dependencies in /opt/venv ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# pip and setuptools live in /opt/build, which stays in this stage; /opt/venv gets exactly the
# hash-checked packages of requirements/runtime.txt, then the service's wheel. The dependencies
# come first, so that a change to the service alone reuses their layer. pip compiles the .pyc
# files here, since the running container has a read-only file system.
COPY requirements ./requirements
RUN --mount=type=secret,id=pip_cert \
    if [ -f /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip install --quiet --require-hashes --no-deps -r requirements/build.txt \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --quiet \
       --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY service ./service
RUN /opt/build/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --quiet \
       --no-deps --no-index /tmp/wheels/tokenstore-*.whl

# --- stage 2: runtime ---
FROM ${PYTHON_IMAGE}
# Nothing installs packages at run time: the base's pip, setuptools and bundled wheels go
# (scanners flag them). A Debian base has no system pip, only the bundled wheels.
RUN if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes --quiet --root-user-action=ignore pip setuptools wheel; \
    fi \
    && rm -rf /usr/share/python-wheels /usr/local/lib/python3*/ensurepip/_bundled \
    && groupadd --system --gid 10001 tokenstore \
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
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd. The
# clients file must be readable by this uid or gid: `tokenstore client add --group 10001`.
USER 10001:10001
EXPOSE 8080 9464
STOPSIGNAL SIGTERM
# Stdlib only, no import of the app: a few ms of CPU per probe (service/healthcheck.py).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["tokenstore-healthcheck"]
ENTRYPOINT ["tokenstore"]
CMD ["serve"]
