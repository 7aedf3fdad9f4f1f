"""One line a minute for an error that repeats every few seconds.

A full disk or a store locked by another program fails every attempt; a line
per attempt would fill the log's own disk and hide everything else, while a
line a minute still says, in the journal, that the service is waiting and why.
"""

from __future__ import annotations

import logging
import time


class OncePerMinute:
    """Logs each distinct message at most once per `interval` seconds."""

    def __init__(self, log: logging.Logger, interval: float = 60.0) -> None:
        self.log, self.interval = log, interval
        self._said: dict[str, float] = {}

    def error(self, message: str) -> bool:
        """Log `message` unless it was logged within the interval; True when logged."""
        now = time.monotonic()
        if now - self._said.get(message, -1e9) < self.interval:
            return False
        self.log.error(message)
        self._said = {**{k: v for k, v in self._said.items() if now - v < self.interval}, message: now}
        return True
