"""The service's log lines: an ISO 8601 local time stamp with its UTC offset,
the level, the message; psdwatch's own lines at INFO, other libraries' below.

Why stamps of our own although journald adds its own: the same lines also go to
a terminal (`psdwatch demo`, `run` by hand) and into files people attach to a
question, where a line without its time cannot be set against the microscope's
acquisition log. The offset keeps a line unambiguous across a DST change.
Why libraries are held at WARNING: APScheduler's "Adding job tentatively" and
Dask's per-worker events are a line per routine event, and bury the one line
that says an image was quarantined.
"""

from __future__ import annotations

import logging
from datetime import datetime

# Libraries that speak at INFO about routine events; their warnings still show.
CHATTY = ("apscheduler", "distributed", "watchdog", "PIL", "matplotlib", "numexpr", "onnxruntime")


class LocalIsoFormatter(logging.Formatter):
    """%(asctime)s as 2026-12-04T03:12:45.123+01:00 (local time, with offset)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def setup_logging(level: int = logging.INFO) -> None:
    """One line per event on stderr: `<time> <LEVEL> <message>`. Idempotent: a
    second call (the demo, then the service it starts) changes nothing."""
    root = logging.getLogger()
    if not any(getattr(h, "_psdwatch", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(LocalIsoFormatter("%(asctime)s %(levelname)s %(message)s"))
        handler._psdwatch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger("psdwatch").setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
