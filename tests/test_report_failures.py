"""Measuring never waits on the reports (issue 23's point, issue 26's report thread).

The real service on a real share, with its reports folder made read-only
(immutable: the tests run as root, for whom permission bits do not count):
images must still be measured and stored, `psdwatch status` (text and --json)
must say that the reports fail and why, and once the folder is writable again
the pages and the thumbnails kept meanwhile must appear.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import classical_service, count_status, drop_frame, start_service, wait_for

pytestmark = pytest.mark.slow


def _read_only(folder: Path, on: bool) -> bool:
    """Make `folder` read-only even for root (chattr +i), or writable again."""
    if os.geteuid() != 0:
        folder.chmod(0o555 if on else 0o755)
        return True
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True).returncode == 0


def _status(config: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "status", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def test_a_read_only_reports_folder_stops_no_measuring_and_status_says_why(tmp_path):
    root, config, database = classical_service(tmp_path)
    reports = tmp_path / "state" / "reports"
    reports.mkdir(parents=True)
    if not _read_only(reports, True):
        pytest.skip("cannot make a folder read-only here (no chattr)")
    service = start_service(config, stderr=subprocess.PIPE, text=True)
    try:
        for k in range(3):
            drop_frame(root / "S", f"frame_{k}", k + 1)
        wait_for(lambda: count_status(database) == 3, 90, "three images measured and stored with no reports folder",
                 check=lambda what: service.poll() is None or pytest.fail(f"the service died: {service.stderr.read()}"))
        counts = wait_for(lambda: (c := json.loads(_status(config, "--json")))["reports_error"] and c, 30,
                          "status --json to show the report failure")
        assert counts["done"] == 3 and counts["queued"] == 0
        assert counts["reports_failing_since"] and counts["reports_due"] >= 1
        assert counts["pictures_waiting"] == 6  # a thumbnail and a view per image, kept in the store
        assert not any(reports.iterdir())
        text = _status(config)
        assert "FAILING since" in text and "still measured and stored" in text
        # the folder comes back: the pages and the pictures kept meanwhile appear, the failure clears
        _read_only(reports, False)
        wait_for(lambda: (reports / "index.html").is_file() and len(list(reports.glob("thumbs/*.png"))) == 3
                 and len(list(reports.glob("views/*.jpg"))) == 3, 60, "the reports once the folder is writable")
        cleared = wait_for(lambda: not (c := json.loads(_status(config, "--json")))["reports_error"] and c, 30,
                           "the failure to clear")
        assert cleared["pictures_waiting"] == 0
        page = next(reports.glob("S-*.html")).read_text()
        assert page.count('src="thumbs/') == 3
    finally:
        _read_only(reports, False)
        service.terminate()
        log = service.communicate(timeout=60)[1]
    assert service.returncode == 0, log
    assert "reports cannot be written" in log
