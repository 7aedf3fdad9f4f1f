"""A file deleted from the share after it was measured: the real service keeps its
row and particles, marks it, and the sample's page says so."""

from __future__ import annotations

import subprocess
import sys

import pytest

from psdwatch.daemon import store
from psdwatch.pipeline.synth import SynthSpec, synth_image, write_example

from .conftest import wait_for

pytestmark = pytest.mark.slow


def test_a_measured_file_deleted_from_the_share_is_marked_not_forgotten(tmp_path):
    share = tmp_path / "share" / "S"
    share.mkdir(parents=True)
    config = tmp_path / "psdwatch.toml"
    config.write_text('[watch]\nroot = "share"\npolling = false\nsettle_seconds = 0.3\nrescan_seconds = 1.0\n'
                      '[store]\ndatabase = "state/db.sqlite"\n[reports]\ndir = "state/reports"\n'
                      '[models]\ndir = "no-models"\n[segment]\nengine = "classical"\n')
    for seed in (1, 2):
        image, mask, truth = synth_image(SynthSpec(size=512, bits=16, style="band", seed=seed))
        write_example(share, f"f{seed}", image, mask, truth)
        (share / f"f{seed}_mask.png").unlink()
        (share / f"f{seed}.json").unlink()
    database = tmp_path / "state" / "db.sqlite"
    service = subprocess.Popen([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def row(path: str) -> dict:
        db = store.open_store(database)
        try:
            return next(iter(db.query("SELECT * FROM images WHERE path = ?", [path])), {})
        finally:
            db.close()

    try:
        wait_for(lambda: database.is_file() and all(row(f"S/f{k}.tif").get("status") == "done" for k in (1, 2)),
                 60, "both files measured")
        n_before = row("S/f1.tif")["n_particles"]
        (share / "f1.tif").unlink()
        wait_for(lambda: row("S/f1.tif").get("missing_since"), 30, "the deletion to be noticed")
        pages = tmp_path / "state" / "reports"
        wait_for(lambda: any("deleted from the share" in p.read_text() for p in pages.glob("*.html")), 30,
                 "the sample page to say so")
        assert service.poll() is None
    finally:
        service.terminate()
        service.wait(timeout=60)
    gone = row("S/f1.tif")
    assert gone["status"] == "done" and gone["n_particles"] == n_before > 0
    db = store.open_store(database)
    assert db.execute("SELECT COUNT(*) FROM particles WHERE image_id = ?", [gone["id"]]).fetchone()[0] == n_before
    assert row("S/f2.tif")["missing_since"] is None
