"""Shared fixtures: the real data beside the repo, and small real models."""

from __future__ import annotations

from pathlib import Path

import pytest

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
