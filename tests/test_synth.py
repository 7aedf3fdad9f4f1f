"""Synthetic images: the truth they carry must be exact, or every accuracy test lies."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import tifffile
from skimage import measure

from psdwatch.pipeline.scale.draw import STYLES
from psdwatch.pipeline.synth import SynthSpec, synth_image, synth_set


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("bits", [8, 16])
def test_truth_matches_the_rendered_mask(style, bits):
    image, mask, truth = synth_image(SynthSpec(size=512, bits=bits, style=style, seed=3))
    assert image.dtype == (np.uint8 if bits == 8 else np.uint16)
    assert image.shape == mask.shape and image.shape[1] == 512
    assert truth["nm_per_px"] > 0 and len(truth["particles"]) > 10
    labels = measure.label(mask)
    assert labels.max() == len(truth["particles"])  # no overlaps, nothing lost
    areas = np.array([r.area for r in measure.regionprops(labels)])
    true_area_px = np.array([math.pi / 4 * (p["ecd_nm"] / truth["nm_per_px"]) ** 2
                             for p in truth["particles"]])
    assert abs(areas.sum() / true_area_px.sum() - 1) < 0.03
    # Particles are brighter than the support around them: this is HAADF.
    assert image[mask].mean() > image[~mask][: image.shape[1] * 400].mean()


def test_particles_avoid_border_and_scale_bar():
    image, mask, truth = synth_image(SynthSpec(size=512, style="box", seed=4))
    x0, y0, x1, y1 = truth["scale_bar"]["annotation_bbox"]
    assert not mask[y0:y1 + 1, x0:x1 + 1].any()
    assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_same_seed_same_image_and_lognormal_sizes():
    a = synth_image(SynthSpec(size=512, seed=7, d_median_nm=4.0, nm_per_px=0.2))
    b = synth_image(SynthSpec(size=512, seed=7, d_median_nm=4.0, nm_per_px=0.2))
    assert np.array_equal(a[0], b[0]) and a[2] == b[2]
    d = np.array([p["ecd_nm"] for p in a[2]["particles"]])
    assert 3.2 < np.median(d) < 4.8


def test_synth_set_writes_the_design_truth_format(tmp_path):
    paths = synth_set(tmp_path, len(STYLES), size=256, seed=1)
    assert len(paths) == len(STYLES)
    for path in paths:
        image = tifffile.imread(path)
        mask = cv2.imread(str(path.with_name(path.stem + "_mask.png")), cv2.IMREAD_GRAYSCALE)
        truth = json.loads(path.with_suffix(".json").read_text())
        assert mask.shape == image.shape and set(np.unique(mask)) <= {0, 255}
        assert truth["nm_per_px"] > 0 and all("ecd_nm" in p for p in truth["particles"])
    styles = {json.loads(p.with_suffix(".json").read_text())["style"] for p in paths}
    assert styles == set(STYLES)


def test_cli_offers_every_bar_style():
    """`psdwatch synth --style` lists its choices without importing the renderer (a fast CLI)."""
    from psdwatch.daemon.cli import synth
    style = next(p for p in synth.params if p.name == "style")
    assert tuple(style.type.choices) == STYLES
