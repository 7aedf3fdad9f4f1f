"""The systemd unit: hardened as README promises, and valid to systemd itself."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "psdwatch.service"


def _service_section() -> dict:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return dict(parser["Service"])


def test_unit_runs_the_service_and_restarts_it():
    service = _service_section()
    assert service["ExecStart"].split()[1:3] == ["run", "--config"]
    assert service["Restart"] == "on-failure"


def test_unit_is_hardened_and_keeps_the_share_read_only():
    service = _service_section()
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "read-only", "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key
    assert service["ReadOnlyPaths"] == "/srv/microscope-export"
    assert service["ReadWritePaths"] == "/var/lib/psdwatch"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze on this machine")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    psdwatch = Path(sys.executable).with_name("psdwatch")
    text = UNIT.read_text().replace("/opt/psdwatch/.venv/bin/psdwatch", str(psdwatch))
    unit = tmp_path / "psdwatch.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "psdwatch.service" in line and "Documentation" not in line]
    assert problems == [], problems
