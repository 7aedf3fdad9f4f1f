"""EIO and ESTALE on read (an SMB/NFS share after a server restart): the real service
retries the file later, the others go on, and each file ends done exactly once; a file
replaced while the service reads it is stored with the bytes it analysed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psdwatch.daemon import store
from psdwatch.pipeline.synth import SynthSpec, synth_image, write_example

from .conftest import classical_service, count_status, start_service, wait_for

pytestmark = pytest.mark.slow
WRAPPER = Path(__file__).resolve().parent / "faults_io"


def test_transient_share_errors_end_in_one_right_outcome(tmp_path):
    root, config, database = classical_service(tmp_path)
    share = root / "S"
    share.mkdir()
    faults = tmp_path / "faults"
    faults.mkdir()
    names = {"EIO_a": 2, "ESTALE_b": 1, "plain_c": 0}
    for seed, (stem, failures) in enumerate(names.items(), 1):
        image, mask, truth = synth_image(SynthSpec(size=384, bits=16, style="band", seed=seed))
        write_example(tmp_path / "staging", stem, image, mask, truth)
        (faults / f"{stem}.tif").write_text(str(failures))
    env = {**os.environ, "PYTHONPATH": f"{WRAPPER}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PSDWATCH_FAULTS_DIR": str(faults)}
    service = start_service(config, env=env)
    try:
        for stem in names:
            (tmp_path / "staging" / f"{stem}.tif").rename(share / f"{stem}.tif")
        wait_for(lambda: count_status(database) == 3, 120,
                 "every file done after its share errors")
        assert service.poll() is None
    finally:
        service.terminate()
        service.wait(timeout=60)
    assert all((faults / f"{stem}.tif").read_text() == "0" for stem in names)  # every error was met
    db = store.open_store(database)
    rows = {r["path"]: r for r in db.query("SELECT * FROM images")}
    assert sorted(rows) == [f"S/{stem}.tif" for stem in sorted(names)]
    assert all(r["status"] == "done" and r["n_particles"] > 0 for r in rows.values())
    counts = json.loads(subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "status", "--json", "--config",
                                        str(config)], capture_output=True, text=True, check=True).stdout)
    assert counts["quarantined"] == 0 and counts["queued"] == 0


def test_a_file_replaced_while_the_service_reads_it_is_stored_with_the_bytes_analysed(tmp_path):
    """The first open of SWAP_frame.tif renames another frame over it: the stored row must
    hold the new file's hash and the new file's analysis, once, never the old hash with
    new pixels (or the reverse)."""
    root, config, database = classical_service(tmp_path)
    share = root / "S"
    share.mkdir()
    faults = tmp_path / "faults"
    faults.mkdir()
    for seed, stem in ((1, "old"), (7, "new")):
        image, mask, truth = synth_image(SynthSpec(size=384, bits=16, style="band", seed=seed,
                                                   d_median_px=(12 if stem == "old" else 24)))
        write_example(tmp_path / "staging", stem, image, mask, truth)
    new_bytes = (tmp_path / "staging" / "new.tif").read_bytes()
    expected = json.loads(subprocess.run(
        [sys.executable, "-m", "psdwatch.daemon.cli", "process", str(tmp_path / "staging" / "new.tif"),
         "--json", "--config", str(config)], capture_output=True, text=True, check=True).stdout)
    old = json.loads(subprocess.run(
        [sys.executable, "-m", "psdwatch.daemon.cli", "process", str(tmp_path / "staging" / "old.tif"),
         "--json", "--config", str(config)], capture_output=True, text=True, check=True).stdout)
    assert len(old["particles"]) != len(expected["particles"]), "the two frames must tell apart"
    (tmp_path / "staging" / "new.tif").rename(faults / "SWAP_frame.tif.next")
    env = {**os.environ, "PYTHONPATH": f"{WRAPPER}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PSDWATCH_FAULTS_DIR": str(faults)}
    service = start_service(config, env=env)
    try:
        (tmp_path / "staging" / "old.tif").rename(share / "SWAP_frame.tif")
        wait_for(lambda: count_status(database) == 1, 120, "the replaced file to be done")
        time.sleep(2)  # a second, wrong row would show up now
        assert service.poll() is None
    finally:
        service.terminate()
        service.wait(timeout=60)
    assert not (faults / "SWAP_frame.tif.next").exists(), "the file was never replaced mid-read"
    rows = list(store.open_store(database).query("SELECT * FROM images"))
    assert len(rows) == 1 and rows[0]["status"] == "done", rows
    assert rows[0]["sha256"] == hashlib.sha256(new_bytes).hexdigest()
    assert rows[0]["n_particles"] == len(expected["particles"])
