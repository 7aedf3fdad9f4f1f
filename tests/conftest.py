"""Shared fixtures and helpers: the real data beside the repo, a real store, waiting.

`make test` runs everything; `pytest -m "not slow"` runs the fast part (under a
minute) while developing: the real service processes, training and the fault
suite are marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from psdwatch.daemon import store

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PSDWATCH_TEST_DATA") or REPO.parent / "shared" / "data")


def pytest_configure(config: pytest.Config) -> None:
    """Without the real data every other test fails on its own "file not found",
    deep in some module: say once, first, what is missing and where it is looked for."""
    if not DATA.is_dir():
        raise pytest.UsageError(f"the real test data is missing: no folder {DATA} (../shared/data beside the "
                                "repository, or $PSDWATCH_TEST_DATA); the tests measure real images from it")


_MAX_WORKERS = 4  # each worker loads torch and starts services and clusters of its own


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without xdist, pytest runs serially
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`make test` runs `pytest -n auto`: one worker per core this process may use, at
    most four.  Run serially, most tests keep one core busy (one service, one Tesseract,
    a file settling), so on the 2-core Xeon two workers took 829 s where one took
    1511-1665 s.  More workers than cores gain nothing: on the 2-core AVX2 EPYC the whole
    suite took 1510 s with two workers and 1486 s with three, the cores busy all the
    while (idle 0.3 %); one network thread per worker instead of two saved 7 % on the
    U-Net tests, too little to run the tests otherwise than a user runs psdwatch."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_WORKERS))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"the real test data is missing: expected {DATA} (../shared/data beside the repo)")
    return DATA


@pytest.fixture(scope="session")
def patches(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "pt-alumina-haadf").glob("ptal_[0-9][0-9][0-9].tif"))


@pytest.fixture(scope="session")
def formats_dir(data_dir: Path) -> Path:
    return data_dir / "formats"


@pytest.fixture(scope="session")
def warm_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundled models folder whose live model has been prepared once on the
    CPU, as the service prepares it there (runtime auto): its ONNX graphs (fp32, int8 and
    the int8 verdict) and the measured choice of path are in its .onnx-cache.  Tests of
    reprocessing, the cluster, the int8 graph's agreement and the U-Net's checks copy it
    (warm_copy) instead of exporting, quantising and timing the same weights again (about
    a minute on a 2-core AVX2 PC); the cold path (no cache) has its own tests (test_demo,
    test_install, test_models_segment).

    Never used in place: even a warm prepare writes a probe file into the cache folder,
    which a copy being made at that moment by another worker would trip on.  Prepared
    once per run, not once per xdist worker: the workers share the run's base folder,
    and a file lock makes the second wait for the first; marked ready only when every
    file a warm start reads is there (a fallback inside prepare raises nothing)."""
    from filelock import FileLock

    from psdwatch.daemon.models.live import live_model_name
    from psdwatch.pipeline import runtime
    from psdwatch.pipeline.runtime import fastest, int8, onnx

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the folder above every worker's own
    folder, ready = base / "warm" / "models", base / "warm" / "ready"
    with FileLock(str(base / "warm.lock")):
        if not ready.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(REPO / "models", folder, ignore=shutil.ignore_patterns(".onnx-cache"))
            model = runtime.prepare(folder, live_model_name(folder), device="cpu")
            graph = onnx.cached_graph(folder, model.sha256)
            assert graph.is_file(), "the live model's fp32 graph was not cached"
            choice = json.loads(graph.with_suffix(".fastest.json").read_text())
            assert choice["cpu"] == fastest.cpu_signature(0), "the paths were not timed for this CPU"
            assert int8.verdict(int8.graph_path(graph)) is not None, "the int8 graph was never judged"
            ready.touch()
    return folder


def warm_copy(warm_models: Path, target: Path) -> Path:
    """`target`: a copy of the warm models folder, to prepare and run models from."""
    return Path(shutil.copytree(warm_models, target))


@pytest.fixture
def models_dir(tmp_path: Path, warm_models: Path) -> Path:
    """tmp_path/models: the bundled models with their graphs prepared (warm_models)."""
    return warm_copy(warm_models, tmp_path / "models")


@pytest.fixture
def store_db(tmp_path: Path):
    """A real SQLite store (WAL) in the test's folder, closed afterwards."""
    db = store.open_store(tmp_path / "state" / "psdwatch.sqlite")
    yield db
    db.close()


def wait_for(predicate: Callable, timeout: float = 15.0, what: str = "", interval: float = 0.05,
             check: Callable[[str], None] | None = None):
    """Poll `predicate` until it returns something true (returned) or `timeout` s pass
    (the test fails, naming `what`). `check(what)` runs on every poll, e.g. to fail
    at once with the log of a daemon that died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if check is not None:
            check(what)
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what or getattr(predicate, '__doc__', None) or predicate}")


def classical_service(tmp_path: Path, watch: str = "", store_keys: str = "",
                      polling: bool = False) -> tuple[Path, Path, Path]:
    """A config for a real `psdwatch run` on a share in tmp_path, classical engine (no
    network to load, so a service test takes seconds): (share root, config, database).
    `watch` and `store_keys` add lines to those sections."""
    root = tmp_path / "share"
    root.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "psdwatch.toml"
    config.write_text(f'[watch]\nroot = "share"\npolling = {str(polling).lower()}\nsettle_seconds = 0.3\n{watch}'
                      f'[store]\ndatabase = "state/db.sqlite"\n{store_keys}[reports]\ndir = "state/reports"\n'
                      '[models]\ndir = "no-models"\n[segment]\nengine = "classical"\n')
    return root, config, tmp_path / "state" / "db.sqlite"


def start_service(config: Path, **popen) -> subprocess.Popen:
    """`psdwatch run --config F` of this checkout as a child process."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(config)], **popen)


def drop_frame(folder: Path, stem: str, seed: int, size: int = 512) -> Path:
    """A synthetic HAADF TIFF as a microscope writes it: the image only, no truth files."""
    from psdwatch.pipeline.synth import SynthSpec, synth_image, write_example

    image, mask, truth = synth_image(SynthSpec(size=size, bits=16, style="band", seed=seed))
    path = write_example(folder, stem, image, mask, truth)
    for extra in (folder / f"{stem}_mask.png", folder / f"{stem}.json"):
        extra.unlink()
    return path


def read_rows(database: Path, sql: str = "SELECT * FROM images", params: tuple = ()) -> list[dict]:
    """Rows of a running service's store through a read-only connection: a test that
    polls must neither take the write lock (open_store ensures the schema) nor fail
    while the service writes; an unreadable moment reads as no rows."""
    import sqlite3

    if not Path(database).is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return []


def count_status(database: Path, status: str = "done") -> int:
    """How many images of a running service's store have this status."""
    return len(read_rows(database, "SELECT id FROM images WHERE status = ?", (status,)))
