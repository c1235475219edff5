# Session Ledger: the API (`ledger serve`) and, with another command, the projection worker
# (`ledger project`). Build: docker build -t session-ledger . ; see docs/operations.md
# ("Containers") and compose.yaml.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A user of its own: the server never runs as root.
RUN useradd --create-home --uid 10001 ledger \
    && mkdir /data \
    && chown ledger:ledger /data

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY domain domain
COPY persistence persistence
COPY projections projections
COPY replay replay
COPY api api
RUN pip install --no-compile .

USER ledger
WORKDIR /data
# Embedded SQLite in the /data volume unless LEDGER_DATABASE_URL names PostgreSQL; JSON logs.
ENV LEDGER_DATABASE_URL=sqlite:////data/ledger.db \
    LEDGER_BLOB_DIR=/data/blobs \
    LEDGER_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

CMD ["ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
