"""The model's input: a frame flattened before scaling for models trained so (card
"input": "flattened"), the plain scaling for older cards, a clear refusal otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from psdwatch.pipeline.runtime import models
from psdwatch.pipeline import runtime
from psdwatch.pipeline.io.image import load_image
from psdwatch.pipeline.train.weak_masks import read_yolo_boxes

from .conftest import REPO


def _above_support(x: np.ndarray, boxes: np.ndarray) -> float:
    """Share of boxed particles whose centre is brighter than 90 % of the unboxed frame."""
    inside = np.zeros(x.shape, bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1 + 1, x0:x1 + 1] = True
    centres = np.array([x[(y0 + y1) // 2, (x0 + x1) // 2] for x0, y0, x1, y1 in boxes])
    return float((centres > np.percentile(x[~inside], 90)).mean())


@pytest.mark.parametrize("name", ["Cu_silica2", "Pd_silica3", "Cu4", "Pd_silica2"])
def test_flattening_lifts_real_particles_on_thick_supports_out_of_the_support(data_dir, name):
    folder = data_dir / "catalysts-boxed"
    data = load_image(folder / "images" / f"{name}.jpg").data
    boxes = read_yolo_boxes(folder / "labels" / f"{name}.txt", data.shape).astype(int)
    plain = _above_support(runtime.normalise(data), boxes)
    flat = _above_support(runtime.normalise(data, mode="flattened"), boxes)
    # Measured: 0.41 -> 0.53, 0.38 -> 0.57, 0.67 -> 0.95, 0.25 -> 0.49.
    assert flat > plain + 0.1, (plain, flat)


def test_flattening_leaves_a_flat_frame_alone():
    rng = np.random.default_rng(0)
    frame = rng.normal(100.0, 5.0, (512, 512)).astype(np.float32)
    frame[200:212, 300:312] += 80.0                           # one small bright particle
    flat = runtime.flatten_background(frame)
    assert abs(float(np.median(flat))) < 5.0                  # the floor is near zero
    assert flat[200:212, 300:312].mean() == pytest.approx(80.0 + float(np.median(flat)), abs=6.0)


def test_a_ramp_under_the_particles_is_taken_away():
    y, x = np.mgrid[0:1024, 0:1024].astype(np.float32)
    ramp = 50.0 + 0.2 * x + 0.1 * y                           # a support thickening across the frame
    frame = ramp.copy()
    for cy, cx in ((100, 100), (500, 900), (900, 400)):
        frame[cy - 5:cy + 6, cx - 5:cx + 6] += 30.0
    flat = runtime.flatten_background(frame)
    support = np.ones(frame.shape, bool)
    for cy, cx in ((100, 100), (500, 900), (900, 400)):
        support[cy - 20:cy + 21, cx - 20:cx + 21] = False
        assert flat[cy, cx] == pytest.approx(30.0, abs=4.0)
    # A 300-grey-level ramp leaves under 2 % of it (the most at the frame's corners,
    # where the opening sees the reflected frame).
    assert np.ptp(ramp[support]) > 250 and np.percentile(np.abs(flat[support]), 99) < 6.0


def _card_copy(tmp_path, live: str, **changes) -> str:
    (tmp_path / f"{live}.safetensors").symlink_to(REPO / "models" / f"{live}.safetensors")
    card = json.loads((REPO / "models" / f"{live}.json").read_text())
    (tmp_path / f"{live}.json").write_text(json.dumps({**card, **changes}))
    return live


def test_the_card_says_how_the_model_sees_its_input(tmp_path):
    live = (REPO / "models" / "LIVE").read_text().strip()
    card = json.loads((REPO / "models" / f"{live}.json").read_text())
    assert models.load_model(REPO / "models", live).input_mode == card.get("input", "plain")
    name = _card_copy(tmp_path, live, input="from-the-future")
    with pytest.raises(ValueError, match="from-the-future.*update psdwatch"):
        models.load_model(tmp_path, name)
    with pytest.raises(ValueError, match="unknown model input"):
        runtime.normalise(np.zeros((8, 8), np.float32), mode="sideways")
