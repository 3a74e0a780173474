# imagine-bot: a slim image that runs `python -m bot` as a non-root user.
FROM python:3.12-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_PATH=/data/imagine.db

WORKDIR /app
# Exact versions with hashes (requirements/bot.lock, made by requirements/lock), then the bot.
COPY requirements/bot.lock ./requirements/
RUN pip install --require-hashes -r requirements/bot.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin imagine \
    && mkdir -p /data && chown imagine /data

USER imagine
VOLUME ["/data"]
# With METRICS_PORT set, healthy means /healthz answers 200; with metrics off it always passes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
# Secrets come from the environment at run time (docker run --env-file .env); none are baked in.
CMD ["python", "-m", "bot"]
