"""Read the next queued image, and find its scale bar, while the network measures this one.

Why: while the network runs on a GPU the CPU waits, and reading a frame plus
Tesseract on its bar take 0.3-1 s that can run meanwhile. (On a 2-core CPU the
network itself keeps both cores busy: measured, no gain, so "auto" leaves it off
there; see `wanted`.) One thread, and at
most two images held (the one being analysed and the next), so memory stays
bounded. The store's rule holds: the bytes analysed are the bytes hashed. A
read-ahead hashes the file before and after reading it and is used only when
both hashes equal the one prepare_job records for the job; anything else (a
changed file, an error) is thrown away and the image is read again in line,
where errors are judged as always.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ...pipeline.analyse import ReadImage, read_image
from ...pipeline.io.image import file_sha256
from ...pipeline.settings import Settings

log = logging.getLogger("psdwatch")
HELD = 2  # images read ahead and not yet taken, at most


def wanted(setting: bool | str, device: str) -> bool:
    """`[compute] read_ahead`: "auto" reads ahead when the network runs on a GPU.
    On a 2-core CPU the network keeps both cores busy and the read-ahead thread
    only competes with it (bench/run.py --only read_ahead: 0.97x there)."""
    if isinstance(setting, bool):
        return setting
    from ...pipeline.runtime import choose_device

    return choose_device(device) == "cuda"


def _read(path: Path, settings: Settings) -> tuple[str | None, ReadImage]:
    before = file_sha256(path)
    read = read_image(path, settings)
    return (before if file_sha256(path) == before else None), read


class ReadAhead:
    """Images read ahead by path, in one background thread."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
        self._futures: OrderedDict[Path, Future] = OrderedDict()

    def start(self, path: Path) -> None:
        """Begin reading `path` unless it is already read or being read."""
        if path in self._futures:
            return
        self._futures[path] = self._pool.submit(_read, path, self._settings)
        while len(self._futures) > HELD:  # a job that was never taken (unchanged, a duplicate)
            self._futures.popitem(last=False)[1].cancel()

    def take(self, path: Path, sha256: str) -> ReadImage | None:
        """The read-ahead of `path` if it is of exactly these bytes, else None."""
        future = self._futures.pop(path, None)
        if future is None or future.cancelled():
            return None
        try:
            hashed, read = future.result()
        except Exception as error:  # noqa: BLE001 - read again in line, where errors are judged
            log.debug("%s: read-ahead failed (%s); reading it again", path, error)
            return None
        return read if hashed == sha256 else None

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._pool.shutdown(wait=True)
