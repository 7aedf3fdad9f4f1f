"""The service's read-ahead (daemon/service/read_ahead.py): the next image read and its scale bar
found in a background thread, used only when its bytes are the ones the job hashed."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from psdwatch.daemon.service.read_ahead import HELD, ReadAhead
from psdwatch.pipeline.analyse import analyse_image
from psdwatch.pipeline.settings import Settings
from psdwatch.pipeline.synth import SynthSpec, synth_image

from .conftest import classical_service, count_status, read_rows, start_service, wait_for

SETTINGS = Settings(engine="classical", bootstrap=0)


def frame(path: Path, seed: int, style: str = "band") -> str:
    image, _, _ = synth_image(SynthSpec(size=512, bits=16, style=style, seed=seed))
    tifffile.imwrite(path, image)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_read_of_the_hashed_bytes_is_used_and_gives_the_same_analysis(tmp_path):
    path = tmp_path / "a.tif"
    sha = frame(path, 1)
    ahead = ReadAhead(SETTINGS)
    try:
        ahead.start(path)
        read = ahead.take(path, sha)
    finally:
        ahead.close()
    assert read is not None and read.bar is not None and read.bar.confident
    assert np.array_equal(read.loaded.data, tifffile.imread(path).astype(np.float32))
    with_read, in_line = analyse_image(path, SETTINGS, None, read), analyse_image(path, SETTINGS)
    assert with_read.nm_per_px == in_line.nm_per_px and with_read.scale_text == in_line.scale_text
    assert [p["ecd_nm"] for p in with_read.particles] == [p["ecd_nm"] for p in in_line.particles]


def test_a_file_rewritten_after_its_read_ahead_is_read_again(tmp_path):
    path = tmp_path / "a.tif"
    frame(path, 1)
    ahead = ReadAhead(SETTINGS)
    try:
        ahead.start(path)
        ahead._futures[path].result()  # the read-ahead is done with the old bytes ...
        new_sha = frame(path, 2)       # ... when a copy replaces the file
        assert ahead.take(path, new_sha) is None
        assert ahead.take(path, new_sha) is None  # taken once, then gone
    finally:
        ahead.close()


def test_at_most_two_images_are_held(tmp_path):
    paths = [tmp_path / f"{i}.tif" for i in range(HELD + 2)]
    shas = [frame(p, i) for i, p in enumerate(paths)]
    ahead = ReadAhead(SETTINGS)
    try:
        for p in paths:
            ahead.start(p)
        assert len(ahead._futures) == HELD
        assert ahead.take(paths[0], shas[0]) is None  # the oldest, never taken, was dropped
        assert ahead.take(paths[-1], shas[-1]) is not None
    finally:
        ahead.close()


def test_a_file_the_read_ahead_cannot_read_is_left_to_the_job(tmp_path):
    path = tmp_path / "gone.tif"
    ahead = ReadAhead(SETTINGS)
    try:
        ahead.start(path)  # vanished before the thread got to it
        assert ahead.take(path, "0" * 64) is None
    finally:
        ahead.close()


def test_auto_reads_ahead_only_beside_a_gpu():
    import torch

    from psdwatch.daemon.service.read_ahead import wanted

    assert wanted(True, "cpu") and not wanted(False, "auto")
    assert not wanted("auto", "cpu")
    assert wanted("auto", "auto") == torch.cuda.is_available()


@pytest.mark.slow
def test_the_service_reading_ahead_stores_each_file_once_as_process_measures_it(tmp_path):
    share, config, database = classical_service(tmp_path)
    config.write_text(config.read_text() + "[compute]\nread_ahead = true\n")
    staging = tmp_path / "staging"
    staging.mkdir()
    expected = {}
    for i in range(5):
        sha = frame(staging / f"f{i}.tif", 40 + i, ("band", "box", "dataline")[i % 3])
        expected[f"S/f{i}.tif"] = sha
    measured = {name: len(analyse_image(staging / Path(name).name, SETTINGS).particles) for name in expected}
    service = start_service(config)
    try:
        (share / "S").mkdir()
        for name in expected:  # a burst: the next file is queued while one is measured
            (staging / Path(name).name).rename(share / name)
        wait_for(lambda: count_status(database) == len(expected), 120, "every file done")
        time.sleep(1)
        assert service.poll() is None
    finally:
        service.terminate()
        service.wait(timeout=60)
    rows = read_rows(database)
    assert sorted(r["path"] for r in rows) == sorted(expected)
    for r in rows:
        assert r["status"] == "done" and r["sha256"] == expected[r["path"]]
        assert r["n_particles"] == measured[r["path"]], r["path"]
