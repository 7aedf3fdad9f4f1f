"""A file that keeps changing (an acquisition written for minutes) must not hold up
the queue: the real service measures the other files first, and the busy one once,
when it has stopped changing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import tifffile

from psdwatch.daemon import store
from psdwatch.pipeline.synth import SynthSpec, synth_image

from .conftest import classical_service, drop_frame, read_rows, start_service, wait_for

pytestmark = pytest.mark.slow


def frame(seed: int, size: int = 512):
    return synth_image(SynthSpec(size=size, bits=16, style="band", seed=seed))[0]


def test_a_file_rewritten_for_a_long_time_does_not_hold_the_queue(tmp_path):
    # Settling shorter than the rewrite interval would never let the file be taken;
    # this one is taken, found changed under the worker, and must be deferred.
    root, config, database = classical_service(tmp_path, "poll_interval = 0.2\n", polling=True)
    share = root / "S"
    share.mkdir()
    busy = share / "busy.tif"
    tifffile.imwrite(busy, frame(1, 2048))
    stop = threading.Event()

    versions = [frame(100 + k, 2048) for k in range(3)]

    def rewrite() -> None:  # a new version every 0.8 s: it settles, then changes while it is measured
        k = 0
        while not stop.is_set():
            k += 1
            tifffile.imwrite(busy, versions[k % 3])
            stop.wait(0.8)

    writer = threading.Thread(target=rewrite, daemon=True)
    service = start_service(config)

    def statuses() -> dict:
        return {r["path"]: r["status"] for r in read_rows(database, "SELECT path, status FROM images")}

    try:
        writer.start()
        time.sleep(3)  # the busy file has been taken and put back by now
        for k in range(4):
            drop_frame(share, f"quiet_{k}", 10 + k)
        wait_for(lambda: all(statuses().get(f"S/quiet_{k}.tif") == "done" for k in range(4)), 60,
                 "the quiet files to be measured while the busy one is still being written")
        stop.set()
        writer.join()
        wait_for(lambda: statuses().get("S/busy.tif") == "done", 120,
                 "the busy file, once it stopped changing")
        status = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "status", "--json", "--config",
                                 str(config)], capture_output=True, text=True, check=True).stdout
        assert json.loads(status)["done"] == 5
        assert service.poll() is None
    finally:
        stop.set()
        service.terminate()
        service.wait(timeout=60)
    db = store.open_store(database)
    final = tifffile.imread(busy)
    row = next(db.query("SELECT sha256 FROM images WHERE path = 'S/busy.tif'"))
    import hashlib
    assert row["sha256"] == hashlib.sha256(busy.read_bytes()).hexdigest()  # the version that stayed
    assert final.shape == (2048, 2048)
