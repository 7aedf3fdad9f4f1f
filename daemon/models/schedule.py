"""Retraining on a schedule, inside the service.

People add annotated images whenever they like; the service retrains at a quiet
hour, and only when the annotations changed since the last training that
finished (by the hash of their content, so touching or renaming files does not
count). Training runs as a separate `psdwatch train` process at the lowest CPU
priority, so the watcher and the worker never stall behind it; a lock file in the
models dir keeps two trainings (nightly or by hand) from running at once. The
new model goes live through the LIVE pointer only if it measures better, and the
worker picks it up without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..config import Config, ConfigError
from ...pipeline.io.files import write_atomic
from ...pipeline.train.data import find_annotations
from .live import live_model_name

log = logging.getLogger("psdwatch")

LOCK_FILE = "train.lock"
STATE_FILE = "last_training.json"
_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*(s|m|h)$")


class TrainingRunning(RuntimeError):
    """Another training holds the lock."""


def parse_schedule(text: str) -> BaseTrigger:
    """A crontab line ("0 2 * * *" = 02:00 every night, local time) or
    "every <n>s|m|h" for short intervals (tests, busy annotation campaigns)."""
    text = text.strip()
    every = _EVERY.match(text)
    if every:
        seconds = float(every.group(1)) * {"s": 1, "m": 60, "h": 3600}[every.group(2)]
        return IntervalTrigger(seconds=seconds)
    try:
        return CronTrigger.from_crontab(text)
    except ValueError as error:
        raise ConfigError(f"[train] schedule {text!r} is neither a crontab line nor "
                          f"'every <n>s|m|h': {error}") from None


def annotation_hash(folder: Path) -> str | None:
    """Content hash of the annotation set (images and masks, with their relative
    names); None when there is nothing to train on."""
    folder = Path(folder)
    pairs = find_annotations(folder) if folder.is_dir() else []
    if not pairs:
        return None
    digest = hashlib.sha256()
    for image, mask in pairs:
        for path in (image, mask):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def last_training(models_dir: Path) -> dict:
    path = Path(models_dir) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def record_training(models_dir: Path, annotations_sha256: str, model: str, returncode: int) -> None:
    write_atomic(Path(models_dir) / STATE_FILE,
                 json.dumps({"annotations_sha256": annotations_sha256, "model": model,
                             "returncode": returncode, "date": time.strftime("%Y-%m-%dT%H:%M:%S")}))


@contextmanager
def training_lock(models_dir: Path) -> Iterator[None]:
    """Held for the whole of one training; raises TrainingRunning at once when
    another process holds it (an flock dies with its process, so a killed
    training never leaves a stale lock)."""
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(models_dir) / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainingRunning(f"another training is running (lock {Path(models_dir) / LOCK_FILE})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def train_command(config: Config, name: str) -> list[str]:
    """The child process: `psdwatch train` with the service's config, starting
    from the live model when there is one (fine-tuning takes a fraction of a
    training from scratch on a CPU)."""
    command = [sys.executable, "-m", "psdwatch.daemon.cli", "train", "--config", str(config.source), "--name", name]
    init = config.train.init
    if init == "live" and live_model_name(config.models.dir) is None:
        init = ""
    return command + (["--init", init] if init else [])


def retrain_if_changed(config: Config, stop: threading.Event | None = None) -> str:
    """The scheduled job. Returns what it did, in one line (also logged)."""
    models_dir = config.models.dir
    current = annotation_hash(config.annotations.dir)
    if current is None:
        return _said(f"retraining: no annotated images in {config.annotations.dir}; nothing to do")
    if last_training(models_dir).get("annotations_sha256") == current:
        return _said("retraining: annotations unchanged since the last training; nothing to do")
    # Named after the annotations, so a training stopped with the service resumes
    # from its checkpoint at the next run instead of starting over.
    name = f"unet-{current[:12]}"
    nice = config.train.nice
    log.info("retraining: annotations changed; training %s at nice %d", name, nice)
    child = subprocess.Popen(train_command(config, name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, preexec_fn=lambda: os.nice(nice))
    watchdog = threading.Thread(target=_stop_child_on, args=(stop, child), daemon=True) if stop else None
    if watchdog:
        watchdog.start()
    for line in child.stdout:
        log.info("train: %s", line.rstrip())
    returncode = child.wait()
    if returncode == 0:
        record_training(models_dir, current, name, returncode)
        return _said(f"retraining: {name} finished")
    return _said(f"retraining: {name} ended with exit code {returncode}; will try again at the next run")


def _stop_child_on(stop: threading.Event, child: subprocess.Popen) -> None:
    """Stopping the service stops its training (the checkpoint lets the next run resume)."""
    while child.poll() is None:
        if stop.wait(1.0):
            child.terminate()
            return


def _said(message: str) -> str:
    log.info(message)
    return message


def start_scheduler(config: Config, stop: threading.Event) -> BackgroundScheduler | None:
    """Start the retraining schedule from [train]; None when it is disabled."""
    train = config.train
    if not train.enabled:
        log.info("retraining: disabled in [train]")
        return None
    trigger = parse_schedule(train.schedule)
    scheduler = BackgroundScheduler(daemon=True)
    # One at a time; a run missed while the machine was off happens once, not N times.
    scheduler.add_job(retrain_if_changed, trigger, args=(config, stop), id="retrain",
                      max_instances=1, coalesce=True, misfire_grace_time=6 * 3600)
    scheduler.start()
    log.info("retraining: schedule %r, next run %s", train.schedule,
             scheduler.get_job("retrain").next_run_time)
    return scheduler
