"""`make test` on a clone without ../shared: one line naming what is missing, not a
"file not found" deep in some test module."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import REPO


def test_the_suite_without_its_real_data_stops_at_once_saying_what_is_missing(tmp_path):
    missing = tmp_path / "no-shared" / "data"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_io.py"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PSDWATCH_TEST_DATA": str(missing)})
    assert done.returncode == 4, done.stdout + done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert said == [f"ERROR: the real test data is missing: no folder {missing} (../shared/data beside the "
                    "repository, or $PSDWATCH_TEST_DATA); the tests measure real images from it"], said
