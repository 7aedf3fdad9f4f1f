"""Retraining on a schedule inside the real service: it trains when the
annotations change and not otherwise, one training at a time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from psdwatch.daemon.models import schedule
from psdwatch.daemon.config import ConfigError, load_config
from psdwatch.daemon.service.loop import run_service

pytestmark = pytest.mark.slow  # real processes or training: `pytest -m 'not slow'` skips them

TINY_TRAIN = """
[train]
schedule = "every 2s"
synthetic = 0
max_epochs = 1
steps = 1
crop = 64
batch = 1
d50_check_images = 0
nice = 0
"""


def make_config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "share").mkdir()
    (tmp_path / "annotations").mkdir()
    config = tmp_path / "psdwatch.toml"
    config.write_text('[watch]\nroot = "share"\npolling = false\nsettle_seconds = 0.3\n'
                      '[store]\ndatabase = "state/db.sqlite"\n[reports]\ndir = "state/reports"\n'
                      '[models]\ndir = "state/models"\n[annotations]\ndir = "annotations"\n'
                      '[psd]\nbootstrap = 0\n'
                      # PyTorch runs the starter the service installs (the training then fine-tunes
                      # it, --init live): no cold ONNX export, int8 build and timing at the
                      # service's start, a minute on 2 cores beside the training
                      '[segment]\nruntime = "torch"\n' + TINY_TRAIN + extra)
    return config


def annotate(data_dir: Path, folder: Path, names: list[str]) -> None:
    for name in names:
        for suffix in (".tif", "_mask.png"):
            shutil.copy(data_dir / "pt-alumina-haadf" / f"{name}{suffix}", folder)


def test_schedule_text():
    assert isinstance(schedule.parse_schedule("0 2 * * *"), CronTrigger)
    assert schedule.parse_schedule("every 90s").interval.total_seconds() == 90
    assert isinstance(schedule.parse_schedule("every 2h"), IntervalTrigger)
    with pytest.raises(ConfigError, match="neither a crontab line"):
        schedule.parse_schedule("nightly please")


def test_annotation_hash_follows_content_not_timestamps(data_dir, tmp_path):
    assert schedule.annotation_hash(tmp_path) is None
    annotate(data_dir, tmp_path, ["ptal_000", "ptal_001"])
    first = schedule.annotation_hash(tmp_path)
    os.utime(tmp_path / "ptal_000.tif", (1, 1))
    assert schedule.annotation_hash(tmp_path) == first
    mask = tmp_path / "ptal_001_mask.png"
    shutil.copy(data_dir / "pt-alumina-haadf" / "ptal_002_mask.png", mask)  # a corrected mask
    assert schedule.annotation_hash(tmp_path) != first


def test_a_second_training_is_refused_while_one_holds_the_lock(tmp_path, data_dir):
    config = make_config(tmp_path)
    annotate(data_dir, tmp_path / "annotations", ["ptal_000", "ptal_001"])
    models_dir = tmp_path / "state" / "models"
    with schedule.training_lock(models_dir):
        done = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "train", "--config", str(config)],
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 3
    assert "another training is running" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_service_retrains_on_an_annotation_change_and_not_without_one(data_dir, tmp_path, caplog):
    config_path = make_config(tmp_path)
    annotate(data_dir, tmp_path / "annotations", ["ptal_000", "ptal_001", "ptal_002", "ptal_003"])
    models_dir = tmp_path / "state" / "models"
    stop = threading.Event()
    caplog.set_level("INFO", logger="psdwatch")
    service = threading.Thread(target=run_service, args=(config_path, stop), daemon=True)
    service.start()
    try:
        def cards() -> list[str]:
            return sorted(p.stem for p in models_dir.glob("unet-*.json"))

        deadline = time.monotonic() + 400
        while not (models_dir / schedule.STATE_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(cards()) == 1, "the first scheduled run trains on the new annotations"
        first = schedule.last_training(models_dir)
        assert first["model"] == cards()[0] and first["returncode"] == 0

        # Several more runs fire; with the annotations unchanged none trains.
        time.sleep(6)
        assert len(cards()) == 1
        assert "annotations unchanged since the last training" in caplog.text

        annotate(data_dir, tmp_path / "annotations", ["ptal_004"])
        deadline = time.monotonic() + 400
        while len(cards()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        while schedule.last_training(models_dir)["model"] == first["model"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(cards()) == 2
        assert schedule.last_training(models_dir)["annotations_sha256"] == \
            schedule.annotation_hash(tmp_path / "annotations")
    finally:
        stop.set()
        service.join(timeout=60)
    assert not service.is_alive()
    # Two trainings never overlapped: every "training ... at nice" line is followed by
    # its own "finished" line before the next one starts.
    events = [line for line in caplog.text.splitlines()
              if "retraining: annotations changed" in line or "finished" in line]
    assert [("finished" in e) for e in events] == [False, True, False, True]
