# No "# syntax=" line: it would make BuildKit pull a frontend image, which offline and mirror-only
# builds cannot do; the builder's own Dockerfile frontend reads everything used here.
#
# Build stage: resolve nothing, install exactly what uv.lock pins into /app/.venv.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
# A C compiler for the validator's speedups (bot/datasets/_speedups.c); only this stage has one.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# The dependency layer depends on the lock file alone: editing the code or README.md reuses it.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY sandbox ./sandbox
RUN uv sync --locked --no-dev --no-editable

# Runtime stage: the virtual environment and nothing else, run as an unprivileged user who can write
# only /data (the environment stays root's, so the bot cannot change its own code).
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 finetune && mkdir -p /data && chown finetune /data
COPY --from=build /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:$PATH" FINETUNE_DATA_DIR=/data PORT=3000 PYTHONUNBUFFERED=1
USER finetune
WORKDIR /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)"
CMD ["finetune-bot", "run"]
