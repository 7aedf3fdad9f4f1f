"""Files written so that a reader sees the old version or the new one, never half.

One helper for every file psdwatch writes for others to read (report pages,
CSVs, thumbnails, model weights and cards, the LIVE pointer, checkpoints, the
ONNX cache, annotation proposals): a temporary file in the same folder (same
file system, so the rename is atomic), then os.replace.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: Path, data: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write `data` to `path` so that readers see the old file or the new one,
    never a half-written one: a temporary file in the same folder (same file
    system, so the rename is atomic), then os.replace. `data` may be a function
    that writes into the open binary file, to stream large files (a CSV of
    10^5 particles) instead of building them in memory. The temporary file is
    made world-readable: mkstemp's 0600 would lock colleagues out of a share."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:60]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def sweep_temporaries(folder: Path, older_than_s: float = 3600) -> None:
    """Temporary files left by a writer killed between write and rename."""
    limit = time.time() - older_than_s
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with suppress(OSError):
                    if entry.stat().st_mtime < limit:
                        os.unlink(entry.path)
