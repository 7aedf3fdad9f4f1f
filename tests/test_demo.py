"""`psdwatch demo` as a newcomer meets it: the first run, with no model cache yet.

A first start prepares the model for minutes (ONNX export, the int8 graph and its
guard, timing the paths); a demo that dropped its frames meanwhile and stopped at
the first empty queue measured nothing and still exited 0. The models folder
here is a fresh copy of the live model, so its .onnx-cache does not exist, as on
a fresh clone; the worktree's own cache is left alone for the other tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from psdwatch.daemon.demo import SAMPLES
from psdwatch.daemon.models.live import LIVE_FILE, live_model_name

from .conftest import REPO


def cold_models_copy(target: Path) -> str:
    """The live model of the checkout, its card and int8 ranges, without any cache."""
    name = live_model_name(REPO / "models")
    assert name, "the checkout has no live model to copy"
    target.mkdir()
    for path in (REPO / "models").glob(f"{name}.*"):
        shutil.copyfile(path, target / path.name)
    (target / LIVE_FILE).write_text(f"{name}\n")
    return name


@pytest.mark.slow
def test_the_first_demo_from_a_cold_model_cache_measures_every_frame(tmp_path):
    models = tmp_path / "models"
    name = cold_models_copy(models)
    assert not (models / ".onnx-cache").exists()
    session = tmp_path / "session"
    run = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "demo", "--outdir", str(session),
                          "--models", str(models)], capture_output=True, text=True, timeout=1500)
    out, log = run.stdout, run.stderr
    assert run.returncode == 0, out + log[-3000:]
    assert "6 images measured, 0 quarantined, 0 duplicate" in out, out
    assert f"model: {name}" in out, out
    assert (models / ".onnx-cache").is_dir(), "the model was not prepared in the cold folder"
    ready_at = log.index("psdwatch ready")
    assert ready_at < log.index("frame_000.tif: done"), "a frame was measured before the service was ready"
    index = (session / "state" / "reports" / "index.html").read_text(encoding="utf-8")
    for sample in SAMPLES:
        assert sample in index
        assert f"{sample}: n=" in out
