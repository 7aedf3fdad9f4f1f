"""One service per store: an advisory lock on a file beside the database.

Two services on one store would split the queue between them correctly, but
each would hand the other's in-flight jobs back at its start (crash recovery)
and both would write the same report pages; and nobody would know there were
two. So the second one refuses to start, naming the first (pid, host, since).
The lock is the kernel's (fcntl.flock): it goes with the process that held it,
so a service killed by a crash or a kill -9 leaves nothing that stops the next
start. The file itself stays (deleting a lock file races with its next taker);
only its content, who holds it, is rewritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime
from pathlib import Path


class StoreInUse(RuntimeError):
    """Another live service holds the store; the message is one line naming it."""


def lock_path(database: Path) -> Path:
    """`<database>.service-lock`, beside the store (so NFS-shared stores share it too)."""
    database = Path(database)
    return database.with_name(database.name + ".service-lock")


def _holder(fd: int) -> str:
    """Who holds the lock, as the file says, for the refusal."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "a process that has not written its name yet"
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, since {info.get('since', '?')}"


class ServiceLock:
    """Held from acquire() until release() or the end of the process."""

    def __init__(self, database: Path) -> None:
        self.database = Path(database)
        self.path = lock_path(self.database)
        self._fd: int | None = None

    def acquire(self) -> "ServiceLock":
        """Take the lock or raise StoreInUse naming its holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreInUse(f"another psdwatch service runs on the store {self.database} ({holder}); "
                             f"stop it first (lock file {self.path})") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now().astimezone().isoformat(timespec="seconds")}
        try:  # who holds it is for the refusal's message; a full state disk must not stop the service
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "ServiceLock":
        return self.acquire()

    def __exit__(self, *_exc) -> None:
        self.release()
