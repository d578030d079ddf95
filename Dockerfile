# syntax=docker/dockerfile:1
# taskq image: stage "build" makes the wheel, stage "runtime" installs it with EXTRAS on a
# slim Python, as a non-root user, with the application's code (APP_SRC) in /app.
# docs/deployment.md explains every choice; tests/deploy/test_deploy_files.py checks it.
#
#   docker build -t taskq-shop .                                  # the Starlette example
#   docker build -t myapp --build-arg EXTRAS=flask --build-arg APP_SRC=path/to/app .

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# only what the wheel is built from: an edit to the tests or docs keeps this layer cached
COPY pyproject.toml README.md ./
COPY taskq_core ./taskq_core
COPY integrations ./integrations
# --no-deps: the wheel of taskq alone; the runtime stage resolves its dependencies
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir dist .

FROM ${PYTHON_IMAGE} AS runtime
# the extras of taskq to install (comma-separated: starlette, flask, django, aiohttp,
# litestar, otel), and packages the application needs besides (its web server)
ARG EXTRAS=starlette
ARG APP_PACKAGES="uvicorn>=0.30"
# the application's code, copied to /app (the working directory: on the import path)
ARG APP_SRC=example_projects/starlette
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_MODULE=starlette_shop.tasks:tq
# a numeric user: Kubernetes' runAsNonRoot can only verify a numeric one
RUN groupadd --system --gid 10001 taskq \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
    --shell /usr/sbin/nologin taskq
COPY --from=build /src/dist/ /tmp/wheels/
# binary wheels only: the slim image has no compiler, and none is installed
RUN set -eu; \
    wheel="$(ls /tmp/wheels/taskq-*.whl)"; \
    spec="$wheel${EXTRAS:+[$EXTRAS]}"; \
    python -m pip install --no-cache-dir --only-binary=:all: "$spec" $APP_PACKAGES; \
    rm -rf /tmp/wheels
WORKDIR /app
# owned by root and read-only for the taskq user: a compromised task cannot rewrite the code
COPY ${APP_SRC}/ /app/
USER 10001:10001
# the web server's port (compose and the Kubernetes Service use the same)
EXPOSE 8000
# readiness: the broker answers within monitoring.health_timeout (exit 0), else exit 1
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["taskq", "health"]
# exec: taskq is PID 1 and gets SIGTERM itself (a shell would not pass it on)
CMD ["sh", "-c", "exec taskq worker --app \"$APP_MODULE\""]
