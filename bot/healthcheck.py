"""`python -m bot.healthcheck`: exit 0 when the bot's `/healthz` answers 200, 1 otherwise; 0 when
metrics are off (`METRICS_PORT` unset: there is nothing to ask). The container image's
`HEALTHCHECK` runs it, so it reads only the two environment variables it needs and the standard
library (no settings validation: a health probe must not fail on an unrelated setting)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5.0


def healthz_url(environ: dict[str, str]) -> str | None:
    """Where the bot serves `/healthz`, or None when metrics are off."""
    port = environ.get("METRICS_PORT", "").strip()
    if not port:
        return None
    host = environ.get("METRICS_HOST", "").strip() or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: ask on loopback
        host = "127.0.0.1"
    return f"http://{host}:{int(port)}/healthz"


def main(environ: dict[str, str] | None = None) -> int:
    url = healthz_url(dict(os.environ if environ is None else environ))
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            healthy = response.status == 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
