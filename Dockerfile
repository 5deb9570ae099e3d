# syntax=docker/dockerfile:1
# One image for every Python service of arbees (and the operator's shell, `orchestrator`).
#
#   docker build -t arbees .
#   docker run --rm -e ARBEES_SERVICE=kalshi_monitor arbees     # any module of arbees_core/services
#
# docker-compose.yml sets ARBEES_SERVICE per service; the default CMD runs
# `python -m arbees_core.services.$ARBEES_SERVICE` as PID 1 (exec), so SIGTERM from `docker stop` reaches the
# service's own graceful stop (close sockets, flush the trade spool) instead of a shell.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build stage: wheels for the project and its dependencies (a compiler only here, for platforms where a
# dependency such as hdrhistogram has no binary wheel, e.g. some arm64 hosts).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels .

# ---- runtime stage
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    ARBEES_HOME=/app \
    ARBEES_STATE_DIR=/app/.arbees \
    ARBEES_CONFIG_ERROR=hold \
    GLIBC_TUNABLES=glibc.malloc.tcache_count=0
# GLIBC_TUNABLES: no per-thread cache of freed chunks in glibc's malloc, as the local runtime starts its services
# (arbees_core/runtime/processes.py says why: without it RSS grows for hours while nothing alive does).
# The plan's probes run inside the stack: netcat-openbsd for `docker exec zmq_listener nc -zv kalshi_monitor 5555`,
# iputils-ping for `docker exec game_shard ping kalshi_monitor`, redis-tools / postgresql-client for
# `redis-cli XLEN prices:kalshi` and `psql` from any service container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends netcat-openbsd iputils-ping redis-tools postgresql-client \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 arbees \
 && useradd --system --uid 10001 --gid arbees --home-dir /app --no-create-home --shell /usr/sbin/nologin arbees
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels arbees && rm -rf /wheels
WORKDIR /app
# State (metrics snapshots, the execution spool, kill switch) lives under /app/.arbees, owned by the service
# user; compose mounts a named volume on .arbees/spool so a recreated execution_service keeps unflushed trades.
RUN mkdir -p /app/.arbees/metrics /app/.arbees/spool /app/.arbees/logs && chown -R arbees:arbees /app
USER arbees:arbees
# ZMQ PUB ports of the plan: kalshi_monitor 5555, polymarket_monitor 5556, game_shard 5558, execution_service 5560.
EXPOSE 5555 5556 5558 5560
ENV ARBEES_SERVICE=""
CMD ["sh", "-c", "exec python -m \"arbees_core.services.${ARBEES_SERVICE:?set ARBEES_SERVICE to a service module, e.g. kalshi_monitor}\""]
