"""A plain, non-editable install is whole: a wheel built from the tree carries the
embedded config.toml, the report templates and the live model (only it), and
psdwatch installed from it measures with the U-Net and plays the demo from any
directory, with its share, store and models in the user's data folder.

A stand-in for a fresh `pip install .`: the wheel is built as pip builds it (an
isolated build), installed with --no-deps into a new venv whose dependencies
are this environment's (a .pth), so the test does not download torch again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from psdwatch.daemon.demo import SAMPLES
from psdwatch.daemon.models.live import live_model_name

from .conftest import DATA, REPO

pytestmark = pytest.mark.slow

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "build", "dist", "*.egg-info",
                                    ".onnx-cache", "checkpoints", "state", "share", "annotations", "out")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin folder, the wheel) of psdwatch installed from a wheel of this tree."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(source)],
                   check=True, capture_output=True, timeout=600)
    wheel = next((tmp / "dist").glob("psdwatch-*.whl"))
    venv.create(tmp / "venv", with_pip=True)
    site = next((tmp / "venv" / "lib").glob("python3*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "deps-of-the-test-environment.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return tmp / "venv" / "bin", wheel


def run_elsewhere(bin_dir: Path, home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The installed console script, run from an unrelated folder by a user whose home is `home`."""
    elsewhere = home / "elsewhere"
    elsewhere.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PSDWATCH_HOME", "XDG_DATA_HOME", "PYTHONPATH")}
    return subprocess.run([str(bin_dir / "psdwatch"), *args], cwd=elsewhere, capture_output=True, text=True,
                          timeout=timeout, env={**env, "HOME": str(home)})


def test_the_wheel_carries_config_templates_and_the_live_model_only(installed):
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    live = live_model_name(REPO / "models")
    assert "psdwatch/config.toml" in names
    assert {f"psdwatch/templates/{p.name}" for p in (REPO / "templates").iterdir() if p.is_file()} <= names
    shipped = {n for n in names if n.startswith("psdwatch/models/")}
    wanted = {"psdwatch/models/LIVE", f"psdwatch/models/{live}.safetensors", f"psdwatch/models/{live}.json"}
    assert wanted <= shipped
    assert shipped <= wanted | {f"psdwatch/models/{live}.int8-ranges"}, "models other than the live one shipped"


def test_an_installed_psdwatch_measures_with_the_unet_and_plays_the_demo_from_anywhere(installed, tmp_path):
    bin_dir, _ = installed
    home = tmp_path / "home"
    data_home = home / ".local" / "share" / "psdwatch"
    shown = run_elsewhere(bin_dir, home, "config")
    assert shown.returncode == 0, shown.stderr
    embedded = Path(shown.stdout.splitlines()[0].split("file: ", 1)[1])
    assert embedded.is_file() and "site-packages" in str(embedded)
    assert f'database = "{data_home / "state" / "psdwatch.sqlite"}"' in shown.stdout

    patch = DATA / "pt-alumina-haadf" / "ptal_036.tif"
    done = run_elsewhere(bin_dir, home, "process", str(patch), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    live = live_model_name(REPO / "models")
    assert record["engine"] == "unet" and record["model"] == live
    assert record["engine_reason"] == f"U-Net {live} from {data_home / 'models'}"

    demo = run_elsewhere(bin_dir, home, "demo", "--outdir", str(tmp_path / "session"), "--images", "2",
                         "--size", "512")
    assert demo.returncode == 0, demo.stdout + demo.stderr[-3000:]
    assert "2 images measured" in demo.stdout and f"model: {live}" in demo.stdout
    assert "templates not found" not in demo.stderr
    index = tmp_path / "session" / "state" / "reports" / "index.html"
    assert f"report: {index}" in demo.stdout
    page = index.read_text(encoding="utf-8")
    assert all(sample in page for sample in SAMPLES)


def test_without_a_usable_model_process_says_so_in_one_line_and_in_the_json(installed, tmp_path):
    bin_dir, _ = installed
    config = tmp_path / "psdwatch.toml"
    config.write_text('[models]\ndir = "no-models"\nstarter = false\n')
    done = run_elsewhere(bin_dir, tmp_path / "home", "process", str(DATA / "pt-alumina-haadf" / "ptal_036.tif"),
                         "--json", "--config", str(config))
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    why = f"no usable model (the models folder {tmp_path / 'no-models'} does not exist): the classical engine measures"
    assert record["engine"] == "classical" and record["engine_reason"] == why
    assert done.stderr.strip().splitlines() == [f"psdwatch: {why}"]
