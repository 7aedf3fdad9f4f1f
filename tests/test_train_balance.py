"""Each kind of training image weighs the same: in the crops drawn and in the
validation IoU that early stopping and the threshold follow."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from psdwatch.pipeline.runtime import models
from psdwatch.pipeline.train import batches, loop as train, data as train_data, scoring

from .conftest import REPO


@pytest.fixture(scope="module")
def mixed(data_dir):
    """Eight real Pt/alumina patches, one real catalyst frame with weak masks (as
    bench/training_data.py lays it out), two synthetic frames: three series."""
    from psdwatch.pipeline.io.image import load_image
    from psdwatch.pipeline.train.weak_masks import mask_from_boxes, read_yolo_boxes

    pairs = train_data.find_annotations(data_dir / "pt-alumina-haadf")[:8]
    patches = [train_data.load_example(image, mask) for image, mask in pairs]
    boxed = data_dir / "catalysts-boxed"
    data = load_image(boxed / "images" / "Cu1.jpg").data
    weak = mask_from_boxes(data, read_yolo_boxes(boxed / "labels" / "Cu1.txt", data.shape))
    catalyst = train_data.Example("cat_Cu1", "x", data, weak)
    return patches + [catalyst] + train_data.synthetic_examples(2, size=128)


def test_every_series_gets_the_same_share_of_crops(mixed):
    assert sorted({train_data.series(e.name) for e in mixed}) == ["cat", "ptal", "synth"]
    rng = np.random.default_rng(0)
    groups = train_data.by_series(mixed)
    drawn = Counter(train_data.series(batches.pick_example(groups, rng).name) for _ in range(3000))
    assert all(abs(drawn[s] / 3000 - 1 / 3) < 0.04 for s in ("cat", "ptal", "synth")), drawn
    # Drawn by image, the one catalyst frame would get 1 crop in 11.
    by_image = Counter(train_data.series(batches.pick_example([mixed], rng).name) for _ in range(3000))
    assert abs(by_image["cat"] / 3000 - 1 / 11) < 0.03, by_image


def test_a_batch_draws_from_every_series(mixed):
    options = train.TrainOptions(crop=64, batch=24, precision="fp32")
    x, y = train.make_batch(mixed, options, np.random.default_rng(1), batches.augmenter())
    assert x.shape == (24, 1, 64, 64) and y.shape == (24, 1, 64, 64)
    assert float(y.sum()) > 0  # crops aim at particles: some hold one


@pytest.mark.slow  # the real model over three frames
def test_validation_iou_is_the_mean_over_series_not_pooled_pixels(mixed):
    folder = REPO / "models"
    model = models.load_model(folder, (folder / "LIVE").read_text().strip())
    val = [mixed[0], mixed[1], mixed[8]]          # two 512² patches, one 640² catalyst frame
    by_series = scoring.evaluate_by_series(model, val)
    per = {"ptal": scoring.evaluate(model, val[:2]), "cat": scoring.evaluate(model, val[2:])}
    assert by_series["series"].keys() == per.keys()
    assert by_series["iou"] == pytest.approx((per["ptal"]["iou"] + per["cat"]["iou"]) / 2)
    # Pooled, whichever series has the most particle pixels would decide.
    assert scoring.evaluate(model, val)["iou"] != pytest.approx(by_series["iou"], abs=1e-3)
