"""The real daemon process: files dropped on a share, a kill -9, a restart.

Every matching file must end with exactly one images row with the right
status, each image's particles stored once, the share untouched, the reports
written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psdwatch.daemon.models import live as live_model
from psdwatch.daemon import store

from .conftest import classical_service, drop_frame, read_rows, wait_for

pytestmark = pytest.mark.slow  # real processes or training: `pytest -m 'not slow'` skips them


def share_state(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def start(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rows(database: Path) -> dict[str, dict]:
    return {r["path"]: r for r in read_rows(database)}


synth_file = drop_frame


@pytest.fixture
def setup(tmp_path):
    root, config, database = classical_service(tmp_path)
    return root, config, database, tmp_path / "state" / "reports"


def test_daemon_survives_kill_9_and_ends_with_one_right_outcome_per_file(setup):
    root, config, database, reports = setup
    first = synth_file(root / "batch A", "frame_0", 1)
    process = start(config)
    try:
        wait_for(lambda: rows(database).get("batch A/frame_0.tif", {}).get("status") == "done",
                 120, "the first image")
        # More arrives, and the service is killed while it works on it.
        synth_file(root / "batch A", "frame_1", 2)
        shutil.copy(first, root / "batch A" / "copy of frame_0.tif")
        synth_file(root / "batch B", "frame_0", 3)
        time.sleep(1.0)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        # While it is down: a broken file, the same content in another sample, a loose file.
        (root / "batch B" / "empty.tif").write_bytes(b"")
        shutil.copy(first, root / "batch B" / "frame_0 again.tif")
        synth_file(root, "loose", 4)
        before = share_state(root)
        process = start(config)
        expected = {"batch A/frame_0.tif": "done", "batch A/frame_1.tif": "done",
                    "batch A/copy of frame_0.tif": "duplicate", "batch B/frame_0.tif": "done",
                    "batch B/empty.tif": "quarantined", "batch B/frame_0 again.tif": "done",
                    "loose.tif": "done"}
        wait_for(lambda: {p: r["status"] for p, r in rows(database).items()} == expected,
                 180, f"every file to be finished as {expected}")
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    stored = rows(database)
    assert stored["loose.tif"]["sample"] == "unsorted"
    assert "empty" in stored["batch B/empty.tif"]["reason"]
    db = store.open_store(database)
    per_image = dict(db.execute("SELECT image_id, COUNT(*) FROM particles GROUP BY image_id").fetchall())
    for path, row in stored.items():
        n = per_image.get(row["id"], 0)
        assert n == (row["n_particles"] if row["status"] == "done" else 0), path
    assert stored["batch B/frame_0 again.tif"]["n_particles"] == stored["batch A/frame_0.tif"]["n_particles"]
    assert store.problems(db) == []
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert share_state(root) == before  # the share is read-only to psdwatch
    index = (reports / "index.html").read_text()
    assert "batch A" in index and "batch B" in index
    status = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "status", "--config", str(config), "--json"],
                            capture_output=True, text=True, timeout=60)
    counts = json.loads(status.stdout)
    assert (counts["done"], counts["duplicate"], counts["quarantined"], counts["queued"]) == (5, 1, 1, 0)
    assert counts["samples"] == 3 and counts["model"] == "classical"
    assert "done in" in output and os.path.getsize(database) > 0


def test_unet_engine_without_a_live_model_refuses_to_start(setup):
    root, config, database, _ = setup
    config.write_text(config.read_text().replace('engine = "classical"', 'engine = "unet"')
                      .replace('dir = "no-models"', 'dir = "no-models"\nstarter = false'))
    result = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no live model" in result.stderr and str(config) in result.stderr


def test_a_fresh_models_dir_gets_the_bundled_starter_and_a_used_one_is_left_alone(tmp_path):
    from psdwatch.daemon.config import Config, load_config
    from psdwatch.daemon.models.live import BUNDLED_MODELS, install_starter, load_live_model
    from psdwatch.pipeline.runtime import models

    bundled = live_model.live_model_name(BUNDLED_MODELS)
    assert bundled is not None, "psdwatch ships a live starter model"
    config_path = tmp_path / "psdwatch.toml"
    # runtime torch: the starter is installed and loaded as for any runtime, without the cold
    # ONNX export, int8 build and timing (a minute on 2 cores; test_demo plays that start)
    config_path.write_text('[models]\ndir = "state/models"\n[segment]\nruntime = "torch"\n')
    model = load_live_model(load_config(config_path), "auto")
    assert model is not None and model.name == bundled
    assert live_model.live_model_name(tmp_path / "state" / "models") == bundled
    assert model.sha256 == models.load_card(BUNDLED_MODELS, bundled)["weights_sha256"]
    # A dir that holds the lab's own model keeps it, live or not.
    own = tmp_path / "own"
    models.save_model(models.build_unet(), own, "ours", {"date": "2026-11-25"})
    assert install_starter(Config(models={"dir": own, "starter": True})) is None
    assert live_model.live_model_name(own) is None
    off = Config(models={"dir": tmp_path / "off", "starter": False})
    assert install_starter(off) is None and not (tmp_path / "off").exists()
