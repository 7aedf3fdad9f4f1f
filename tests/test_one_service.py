"""One service per store, and what a person reads of a running one: the log's
time stamps, no library chatter, `status` naming the store it read."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from psdwatch.daemon.service.lock import ServiceLock, StoreInUse, lock_path

from .conftest import classical_service, count_status, drop_frame, wait_for

pytestmark = pytest.mark.slow  # real service processes

ISO_LOCAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (INFO|WARNING|ERROR|CRITICAL) ")


class Service:
    """`psdwatch run` as a child process, its stderr collected line by line."""

    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.process.stderr.readline, "")),
                                        daemon=True)
        self._reader.start()

    def wait_ready(self) -> None:
        wait_for(lambda: any("psdwatch ready" in line for line in self.lines), 120, "the service to be ready",
                 check=lambda what: self.process.poll() is None or pytest.fail("".join(self.lines)))

    def end(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
        self._reader.join(timeout=10)


def serve_one_frame(root: Path, config: Path, database: Path) -> Service:
    """A service started, ready, given one frame, stopped once it is measured."""
    service = Service(config)
    try:
        service.wait_ready()
        drop_frame(root / "batch", "frame_0", 1)
        wait_for(lambda: count_status(database) == 1, 120, "the frame to be measured")
    finally:
        service.end()
    return service


def run_once(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


def test_a_second_service_on_the_store_is_refused_naming_the_first_and_a_crash_leaves_no_obstacle(tmp_path):
    root, config, database = classical_service(tmp_path)
    first = Service(config)
    try:
        first.wait_ready()
        second = run_once(config, "run")
        assert second.returncode == 3, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"pid {first.process.pid} on host {socket.gethostname()}" in lines[0]
        assert str(database) in lines[0]
        first.end(signal.SIGKILL)  # a crash: the lock file stays, its holder is gone
        assert lock_path(database).is_file()
        serve_one_frame(root, config, database)  # the next start takes the store and measures
    finally:
        first.end(signal.SIGKILL)


def test_log_lines_carry_local_iso_time_stamps_and_no_scheduler_chatter(tmp_path):
    service = serve_one_frame(*classical_service(tmp_path))
    assert service.lines, "the service logged nothing"
    for line in service.lines:
        assert ISO_LOCAL.match(line), f"no ISO 8601 local time stamp: {line!r}"
    text = "".join(service.lines)
    assert "retraining: schedule" in text  # the scheduler was started ...
    assert "Adding job tentatively" not in text and "apscheduler" not in text.lower()  # ... and kept quiet


def test_status_names_the_store_it_read(tmp_path):
    _, config, database = classical_service(tmp_path)
    empty = json.loads(run_once(config, "status", "--json").stdout)
    assert empty["database"] == str(database) and empty["store_exists"] is False
    assert "no store yet" in run_once(config, "status").stdout
    service = Service(config)
    try:
        service.wait_ready()
    finally:
        service.end()
    made = json.loads(run_once(config, "status", "--json").stdout)
    assert made["database"] == str(database) and made["store_exists"] is True
    assert f"store    {database}\n" in run_once(config, "status").stdout


def test_the_lock_is_held_by_one_holder_in_one_process_too(tmp_path):
    database = tmp_path / "db.sqlite"
    with ServiceLock(database):
        with pytest.raises(StoreInUse, match=f"pid {os.getpid()} on host"):
            ServiceLock(database).acquire()
    with ServiceLock(database):  # released: free again
        pass
