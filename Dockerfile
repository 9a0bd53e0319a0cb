# One dependency layer, four targets: api (the default), worker, simulators, and test (with the dev dependencies,
# for the suite runners). Configured only by environment variables and mounted secret files (SECRETS_DIR).
#
# The base is a build argument: the public default, or a local equivalent built from Debian's packages by
# ci/local-bases where no registry can be reached (`--build-arg PYTHON_IMAGE=proving-ground/python:3.11-local`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS python
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

FROM python AS builder
ARG UV_VERSION=0.13.9
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3
WORKDIR /srv
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv /opt/uv/bin/uv sync --frozen --no-dev --no-install-project
# The sources where the runtime images keep them: the project is installed editable, its metadata in the venv
# (the version route reads it) and its code at /srv (migrations are found beside the app package).
COPY README.md alembic.ini ./
COPY migrations ./migrations
COPY simulators ./simulators
COPY app ./app
RUN --mount=type=cache,target=/root/.cache/uv /opt/uv/bin/uv sync --frozen --no-dev

FROM builder AS test-dependencies
RUN --mount=type=cache,target=/root/.cache/uv /opt/uv/bin/uv sync --frozen

FROM python AS runtime
RUN useradd --system --uid 10001 --no-create-home --home-dir /srv --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /srv /srv
WORKDIR /srv
ENV PATH=/opt/venv/bin:$PATH
USER 10001

FROM runtime AS simulators
EXPOSE 9101
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9101/__sim/clock', timeout=2)"]
ENTRYPOINT ["python3", "-m", "simulators", "--host", "0.0.0.0", "--port", "9101"]
CMD ["payments"]

FROM runtime AS worker
ENV METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9464
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=2)"]
ENTRYPOINT ["python3", "-m", "app", "worker"]

FROM test-dependencies AS test
COPY . .
# Not root: the embedded PostgreSQL some tests start refuses to run as root.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin runner && chown -R 10001 /srv
ENV PATH=/opt/venv/bin:$PATH
USER 10001
ENTRYPOINT ["pytest"]

FROM runtime AS api
ENV LISTEN_HOST=0.0.0.0 \
    LISTEN_PORT=8443
EXPOSE 8443
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["python3", "-m", "app.runtime.probe"]
ENTRYPOINT ["python3", "-m", "app", "serve"]
