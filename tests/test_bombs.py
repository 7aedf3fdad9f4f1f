"""Decompression bombs: refused from their headers, before a decoder allocates, with
the real service's memory staying flat while they are dropped on the share."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import tifffile

from psdwatch.pipeline.io.image import UnreadableImage, load_image

from .conftest import DATA, classical_service, start_service, wait_for


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header that declares width x height grey pixels, and a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """SOI, a baseline SOF0 declaring the size (one component), EOI."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def dm4_declaring(path: Path, side: int) -> None:
    """The shared JEOL DM4 file with its image's Dimensions tags set to side x side (data unchanged)."""
    raw = bytearray((DATA / "formats" / "JEOL HAADF Image.dm4").read_bytes())
    start = raw.rindex(b"Dimensions")  # the second ImageData: the image, not its thumbnail
    end = raw.index(b"PixelDepth", start)
    old = b"\x00\x00\x00\x05" + struct.pack("<I", 112)  # two uint32 tags of 112 px
    assert raw[start:end].count(old) == 2, "the shared DM4 file changed"
    raw[start:end] = raw[start:end].replace(old, b"\x00\x00\x00\x05" + struct.pack("<I", side))
    path.write_bytes(bytes(raw))


def emd_declaring(path: Path, side: int) -> None:
    """The shared Velox EMD file with one image dataset replaced by a side x side one, never written.

    HDF5 stores no chunk of an unwritten dataset, so the file stays small while its
    header declares gigabytes."""
    shutil.copy(DATA / "formats" / "Test SI 16x16 215 kx.emd", path)
    with h5py.File(path, "r+") as f:
        group = f["Data/Image"][next(iter(f["Data/Image"]))]
        dtype = group["Data"].dtype
        del group["Data"]
        group.create_dataset("Data", shape=(side, side, 1), dtype=dtype, chunks=(512, 512, 1), compression="gzip")


def bombs(folder: Path) -> dict[str, str]:
    """file name -> the words its quarantine reason must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "huge.png").write_bytes(png_declaring(60000, 60000))
    (folder / "huge.jpg").write_bytes(jpeg_declaring(65000, 65000))
    (folder / "zeros.png").write_bytes(cv2.imencode(".png", np.zeros((8192, 8192), np.uint8))[1].tobytes())
    tifffile.imwrite(folder / "tiles.tif", np.zeros((8192, 8192), np.uint16), tile=(512, 512),
                     compression="zlib")
    dm4_declaring(folder / "huge.dm4", 60000)
    emd_declaring(folder / "huge.emd", 60000)
    return {"huge.png": "too large", "huge.jpg": "too large", "zeros.png": "decompression bomb",
            "tiles.tif": "decompression bomb", "huge.dm4": "too large", "huge.emd": "too large"}


def test_each_bomb_is_refused_from_its_header(tmp_path):
    for name, words in bombs(tmp_path).items():
        assert (tmp_path / name).stat().st_size < 3_000_000, name  # small files, huge declared arrays
        with pytest.raises(UnreadableImage, match=words):
            load_image(tmp_path / name)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_the_service_quarantines_bombs_with_flat_memory(tmp_path):
    share, config, database = classical_service(tmp_path)
    status = [sys.executable, "-m", "psdwatch.daemon.cli", "status", "--json", "--config", str(config)]
    service = start_service(config)
    try:
        wait_for(lambda: (tmp_path / "state" / "reports" / "index.html").is_file(), 60, "the service to start")
        time.sleep(2)
        idle = _rss_mb(service.pid)
        peak, done = [idle], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(_rss_mb(service.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        expected = bombs(tmp_path / "staging")
        for name in expected:  # dropped on the share the way a copy lands: renamed in whole
            (tmp_path / "staging" / name).rename(share / name)
        wait_for(lambda: json.loads(subprocess.run(status, capture_output=True, text=True).stdout)
                 ["quarantined"] == len(expected), 120, "every bomb to be quarantined")
        done.set()
        sampler.join()
        assert service.poll() is None, "the service died"
    finally:
        service.terminate()
        service.wait(timeout=60)
    from psdwatch.daemon import store
    db = store.open_store(database)
    reasons = {r["path"]: r["reason"] for r in db.query("SELECT path, reason FROM images")}
    for name, words in expected.items():
        assert words in reasons[name] and "\n" not in reasons[name], reasons
    assert max(peak) - idle <= 100, f"idle {idle:.0f} MB, peak {max(peak):.0f} MB"
