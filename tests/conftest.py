"""Shared fixtures and helpers: the real data beside the repo, a real store, waiting.

`make test` runs everything; `pytest -m "not slow"` runs the fast part (under a
minute) while developing: the real service processes, training and the fault
suite are marked slow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest

from psdwatch.daemon import store

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


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
