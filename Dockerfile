# syntax=docker/dockerfile:1
# LLM-Sentinel image: the Bytewax dataflow, run by docker-entrypoint.sh (docs/deploy.md).
#   docker build -t llm-sentinel:0.1.0 .
#   docker run --rm -e SENTINEL_SOURCE__TYPE=kafka -e SENTINEL_KAFKA__BROKERS=kafka:9092 llm-sentinel:0.1.0

# ---- builder: dependencies first (cached while pyproject.toml is unchanged), then the project
FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml ./
# runtime dependencies only ([project].dependencies; never the dev extras)
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --no-cache-dir --requirement requirements.txt
COPY README.md ./
COPY sentinel ./sentinel
COPY dataflows ./dataflows
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import dataflows.sentinel, sentinel.config"

# ---- runtime: the venv only, non-root
FROM python:3.11-slim
LABEL org.opencontainers.image.title="llm-sentinel" \
      org.opencontainers.image.description="Streaming anomaly detection for LLM telemetry (Bytewax dataflow)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 sentinel \
    && useradd --system --uid 10001 --gid sentinel --home-dir /app --shell /usr/sbin/nologin sentinel \
    && mkdir -p /app /var/lib/sentinel/out /var/bytewax/recovery /etc/sentinel \
    && chown -R sentinel:sentinel /app /var/lib/sentinel /var/bytewax
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# entrypoint.sh / entrypoint-recovery.sh: the names the bytewax Helm chart runs
COPY --chmod=0755 docker-entrypoint.sh /app/docker-entrypoint.sh
COPY --chmod=0755 docker-entrypoint.sh /app/entrypoint.sh
COPY --chmod=0755 docker-entrypoint.sh /app/entrypoint-recovery.sh
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BYTEWAX_WORKERS_PER_PROCESS=1 \
    SENTINEL_OUTPUT__DIR=/var/lib/sentinel/out \
    SENTINEL_METRICS__ENABLED=true \
    SENTINEL_METRICS__HOST=0.0.0.0 \
    SENTINEL_METRICS__PORT=9100
USER 10001:10001
# 9999: Bytewax cluster traffic; 9100: Prometheus metrics; 8080: HTTP API (/health, /ready)
EXPOSE 9999 9100 8080
VOLUME ["/var/bytewax/recovery"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('SENTINEL_METRICS__PORT', '9100'), timeout=4)"]
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD []
