"""`psdwatch reprocess`: a share drained by the service with one engine, then every
image measured again with the U-Net: one row per image, history kept, no particle
twice, the model recorded, and an interrupted run that goes on where it stopped."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys

import pytest

from psdwatch.daemon.models import reprocess
from psdwatch.daemon import store
from psdwatch.daemon.config import load_config, settings_from_config
from psdwatch.pipeline.runtime import models
from psdwatch.pipeline import runtime

from .conftest import classical_service, count_status, drop_frame, start_service, wait_for

pytestmark = pytest.mark.slow


def test_reprocess_all_with_the_unet_replaces_results_and_keeps_history(tmp_path, models_dir):
    root, config, database = classical_service(tmp_path)
    for k, sample in enumerate(("A", "A", "B")):
        drop_frame(root / sample, f"f{k}", k + 1, size=384)
    service = start_service(config)
    try:
        wait_for(lambda: count_status(database) == 3, 60,
                 "the share drained with the classical engine")
    finally:
        service.terminate()
        service.wait(timeout=60)
    config.write_text(config.read_text().replace('dir = "no-models"', 'dir = "models"'))
    live = (tmp_path / "models" / "LIVE").read_text().strip()

    # An interrupted run: one image done, then stopped.
    cfg = load_config(config)
    model = runtime.prepare_model(models.load_model(cfg.models.dir, live))
    settings = settings_from_config(cfg)
    settings.engine = "unet"
    db = store.open_store(database)
    todo = reprocess.targets(db, None, model)
    assert len(todo) == 3
    list(itertools.islice(reprocess.remeasure(db, cfg.watch.root, settings, model, todo), 1))
    assert len(reprocess.targets(db, None, model)) == 2

    done = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "reprocess", "--all", "--model", live,
                           "--config", str(config)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 done" in done.stdout and "re-measuring 2 images" in done.stderr
    again = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "reprocess", "A", "--model", live,
                            "--config", str(config)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "nothing to re-measure" in again.stdout

    rows = list(db.query("SELECT * FROM images ORDER BY path"))
    assert [r["path"] for r in rows] == ["A/f0.tif", "A/f1.tif", "B/f2.tif"]
    assert all(r["status"] == "done" and r["model"] == live and r["engine"] == "unet" for r in rows)
    for r in rows:  # each image's particles once, as many as its row says
        assert db.execute("SELECT COUNT(*) FROM particles WHERE image_id = ?", [r["id"]]).fetchone()[0] == r["n_particles"]
        assert db.execute("SELECT COUNT(DISTINCT number) FROM particles WHERE image_id = ?",
                          [r["id"]]).fetchone()[0] == r["n_particles"]
    history = list(db.query("SELECT * FROM images_history ORDER BY path"))
    assert [(h["path"], h["model"], h["replaced_because"]) for h in history] == [
        ("A/f0.tif", "classical", "reprocessed"), ("A/f1.tif", "classical", "reprocessed"),
        ("B/f2.tif", "classical", "reprocessed")]
    status = json.loads(subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "status", "--json", "--config",
                                        str(config)], capture_output=True, text=True, check=True).stdout)
    assert status["done"] == 3 and status["mixed_model_samples"] == 0


def test_reprocess_needs_samples_or_all(tmp_path):
    _, config, _ = classical_service(tmp_path)
    done = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "reprocess", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip() == "psdwatch: name the samples to re-measure, or use --all"


def cli(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "reprocess", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=600)


def test_after_adding_a_fallback_scale_changed_config_re_measures_the_unscaled_images_and_force_all(tmp_path,
                                                                                                     patches):
    """The sample page's advice: add [scale] nm_per_px, then reprocess. Real patches
    (no calibration, no scale bar) are measured in px; a synthetic frame reads its bar."""
    root, config, database = classical_service(tmp_path)
    (root / "P").mkdir()
    for patch in patches[:2]:
        shutil.copyfile(patch, root / "P" / patch.name)
    drop_frame(root / "S", "f0", 1, size=384)
    service = start_service(config)
    try:
        wait_for(lambda: count_status(database) == 3, 120, "the share drained")
    finally:
        service.terminate()
        service.wait(timeout=60)
    db = store.open_store(database)
    assert [r[0] for r in db.execute("SELECT path FROM images WHERE nm_per_px IS NULL ORDER BY path")] == [
        f"P/{p.name}" for p in patches[:2]]
    assert "nothing to re-measure" in cli(config, "--all", "--changed-config").stdout  # no scale configured yet

    config.write_text(config.read_text() + "[scale]\nnm_per_px = 0.5\n")
    plain = cli(config, "--all")
    assert plain.returncode == 0 and "nothing to re-measure" in plain.stdout and "--changed-config" in plain.stdout
    changed = cli(config, "--all", "--changed-config")
    assert changed.returncode == 0, changed.stderr
    assert "re-measuring 2 images" in changed.stderr and "2 done" in changed.stdout
    rows = {r["path"]: r for r in db.query("SELECT * FROM images")}
    for patch in patches[:2]:
        assert rows[f"P/{patch.name}"]["nm_per_px"] == 0.5 and rows[f"P/{patch.name}"]["scale_source"] == "config"
    assert rows["S/f0.tif"]["scale_source"] == "ocr"
    assert sorted(h["path"] for h in db.query("SELECT path FROM images_history")) == [
        f"P/{p.name}" for p in patches[:2]]
    assert "nothing to re-measure" in cli(config, "--all", "--changed-config").stdout  # resumes: nothing left

    config.write_text(config.read_text().replace("nm_per_px = 0.5", "nm_per_px = 0.4"))
    assert "re-measuring 2 images" in cli(config, "P", "--changed-config").stderr  # a changed fallback too
    forced = cli(config, "--all", "--force")
    assert forced.returncode == 0 and "re-measuring 3 images" in forced.stderr and "3 done" in forced.stdout
    assert db.execute("SELECT COUNT(*) FROM images_history").fetchone()[0] == 2 + 2 + 3
    assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 3
    both = cli(config, "--all", "--force", "--changed-config")
    assert both.returncode == 1 and both.stderr.count("\n") == 1
