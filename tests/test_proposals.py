"""Annotation proposals from the real service: the pair it writes is one the
training loader takes as it is, and the mask is the one the service measured."""

from __future__ import annotations

import pytest

import threading
import time

import cv2
import numpy as np
import tifffile

from psdwatch.daemon.models import proposals
from psdwatch.daemon.service.loop import run_service
from psdwatch.pipeline.train import data as train_data
from psdwatch.pipeline.synth import SynthSpec, synth_image, write_example

pytestmark = pytest.mark.slow  # real processes or training: `pytest -m 'not slow'` skips them


def test_the_service_proposes_pairs_the_trainer_reads(tmp_path):
    share = tmp_path / "share" / "Pt <b>batch 7"
    share.mkdir(parents=True)
    config = tmp_path / "psdwatch.toml"
    config.write_text('[watch]\nroot = "share"\npolling = false\nsettle_seconds = 0.3\n'
                      '[store]\ndatabase = "state/db.sqlite"\n[reports]\ndir = "state/reports"\n'
                      '[models]\ndir = "state/models"\n[train]\nenabled = false\n'
                      '[annotations]\ndir = "annotations"\nproposals_dir = "state/proposals"\npropose = true\n'
                      '[psd]\nbootstrap = 0\n')
    stop = threading.Event()
    service = threading.Thread(target=run_service, args=(config, stop), daemon=True)
    service.start()
    try:
        image, mask, truth = synth_image(SynthSpec(size=512, bits=16, style="band", seed=3))
        path = write_example(share, "frame 1", image, mask, truth)
        for extra in (share / "frame 1_mask.png", share / "frame 1.json"):
            extra.unlink()
        deadline = time.monotonic() + 120
        while not list((tmp_path / "state" / "proposals").rglob("*.tif")) and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        stop.set()
        service.join(timeout=30)
    pairs = train_data.find_annotations(tmp_path / "state" / "proposals")
    assert len(pairs) == 1
    image_out, mask_out = pairs[0]
    assert image_out.parent.name == "Pt_b_batch_7"  # a safe folder name for any sample
    assert tifffile.imread(image_out).dtype == np.uint16
    assert np.array_equal(tifffile.imread(image_out), image)  # 16-bit pixels kept as they are
    example = train_data.load_example(image_out, mask_out)
    predicted = cv2.imread(str(mask_out), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(predicted)) <= {0, 255}
    # The proposal is the service's prediction: close to the truth, not a copy of it.
    iou = (example.mask & mask).sum() / (example.mask | mask).sum()
    assert 0.7 < iou < 1.0
    assert path.exists()


def test_proposals_stop_at_the_limit_and_never_overwrite(tmp_path):
    data = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 7.0
    mask = data > 300
    first = proposals.write_proposal(tmp_path, "s", "/share/s/a.tif", "ab" * 32, data, mask, limit=2)
    assert first is not None and tifffile.imread(first).max() == 65535  # float data stretched
    assert proposals.write_proposal(tmp_path, "s", "/share/s/a.tif", "ab" * 32, data, mask, limit=2) is None
    assert proposals.write_proposal(tmp_path, "s", "/share/s/b.tif", "cd" * 32, data, mask, limit=2)
    assert proposals.write_proposal(tmp_path, "s", "/share/s/c.tif", "ef" * 32, data, mask, limit=2) is None
    assert proposals.count_proposals(tmp_path) == 2
