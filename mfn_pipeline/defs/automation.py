"""When builds start on their own: the nightly rebuild of every preset."""

from __future__ import annotations

NIGHTLY_CRON = "0 2 * * *"
NIGHTLY_TIMEZONE = "UTC"
