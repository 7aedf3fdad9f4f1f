"""Measuring particles on masks whose true sizes are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import morphology
from skimage.draw import disk, rectangle

from psdwatch.pipeline.measure import particles as measure


def _disks(shape, specs):
    mask = np.zeros(shape, bool)
    for (r, c), radius in specs:
        mask[disk((r, c), radius, shape=shape)] = True
    return mask


def test_ecd_of_disks_matches_their_area_in_nm():
    mask = _disks((200, 200), [((50, 50), 10), ((120, 140), 20)])
    labels = measure.label_particles(mask)
    image = mask.astype(np.float32) * 100
    particles = measure.measure_particles(labels, image, nm_per_px=0.5)
    assert len(particles) == 2
    for p in particles:
        assert p["ecd_nm"] == math.sqrt(4 * p["area_px"] / math.pi) * 0.5
        assert p["area_nm2"] == p["area_px"] * 0.25
        assert p["mean_intensity"] == 100
    ecds = sorted(p["ecd_nm"] for p in particles)
    assert abs(ecds[0] - 10) / 10 < 0.03 and abs(ecds[1] - 20) / 20 < 0.02


def test_border_and_excluded_particles_are_not_measured():
    mask = _disks((100, 100), [((50, 50), 8), ((3, 50), 6), ((90, 20), 5)])
    exclude = np.zeros_like(mask)
    exclude[95:, :] = True  # a databar band the third particle touches
    mask &= ~exclude
    labels = measure.label_particles(mask, exclude)
    assert len(np.unique(labels)) - 1 == 1
    assert labels[50, 50] > 0


def test_holes_are_filled_and_specks_removed():
    mask = _disks((80, 80), [((40, 40), 12)])
    mask[38:42, 38:42] = False  # a hole
    mask[5, 5] = True  # a speck
    cleaned = measure.clean_mask(mask, min_area=6)
    assert cleaned[40, 40] and not cleaned[5, 5]


def test_min_area_follows_nm_and_keeps_pixel_floor():
    assert measure.min_area_px(0.1, 1.0, 6) == math.ceil(math.pi / 4 * 100)
    assert measure.min_area_px(1.0, 0.5, 6) == 6
    assert measure.min_area_px(None, 1.0, 6) == 6


def test_feret_of_a_rectangle():
    mask = np.zeros((60, 60), bool)
    mask[rectangle((20, 10), extent=(10, 30))] = True
    p = measure.measure_particles(measure.label_particles(mask), mask.astype(float), 1.0)[0]
    assert abs(p["feret_min_nm"] - 10) < 0.01
    assert p["feret_max_nm"] == pytest.approx(math.hypot(10, 30), abs=1e-4)  # corner to corner, as ImageJ
    assert p["solidity"] == 1.0


def test_feret_and_solidity_of_a_disc_and_an_l_shape():
    disc = _disks((80, 80), [((40, 40), 20)])
    p = measure.measure_particles(measure.label_particles(disc), disc.astype(float), 1.0)[0]
    assert 39 <= p["feret_min_px"] <= p["feret_max_px"] <= 43
    assert 0.97 <= p["solidity"] <= 1.0
    shape = np.zeros((50, 50), bool)
    shape[10:40, 10:20] = True
    shape[30:40, 10:40] = True  # an L: 30x10 + 10x20 = 500 px, hull 30x30 minus a 20x20 corner half
    p = measure.measure_particles(measure.label_particles(shape), shape.astype(float), 1.0)[0]
    assert p["area_px"] == 500
    assert p["solidity"] == pytest.approx(500 / (900 - 200), abs=1e-6)


def test_watershed_splits_two_touching_disks():
    mask = _disks((100, 120), [((50, 40), 15), ((50, 68), 15)])
    assert len(np.unique(measure.label_particles(mask))) - 1 == 1
    assert len(np.unique(measure.label_particles(mask, watershed=True, min_distance=8))) - 1 == 2


def test_unknown_scale_gives_pixels_only():
    mask = _disks((60, 60), [((30, 30), 8)])
    p = measure.measure_particles(measure.label_particles(mask), mask.astype(float), None)[0]
    assert p["ecd_nm"] is None and p["area_nm2"] is None and p["ecd_px"] > 15


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two label images that cut the same pixels into the same particles (numbers aside)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


def _masks(data_dir):
    """Real human masks, the same with noise specks and punched holes, and random speckle."""
    import cv2

    rng = np.random.default_rng(3)
    for path in sorted((data_dir / "pt-alumina-haadf").glob("ptal_0[0-4]5_mask.png")):
        truth = cv2.imread(str(path), 0) > 0
        noisy = truth ^ (rng.random(truth.shape) < 0.02)
        yield truth
        yield noisy
    for density in (0.3, 0.5, 0.62):
        yield ndi.binary_opening(rng.random((300, 400)) < density)


def test_clean_mask_is_fill_holes_then_remove_small_objects(data_dir):
    for mask in _masks(data_dir):
        for min_area in (1, 6, 40):
            reference = ndi.binary_fill_holes(mask)
            if min_area > 1:
                reference = morphology.remove_small_objects(reference, max_size=min_area - 1)
            assert np.array_equal(measure.clean_mask(mask, min_area), reference)


def test_labels_are_scikit_images_with_the_border_cleared(data_dir):
    from skimage import measure as skm, segmentation

    for mask in _masks(data_dir):
        for border in (True, False):
            reference = skm.label(mask, connectivity=2)
            if border:
                reference = segmentation.clear_border(reference)
            assert _same_partition(measure.label_particles(mask, exclude_border=border), reference)


def _regionprops_reference(labels, image):
    """The measures regionprops gives, particle by particle, as the module took them before."""
    from skimage import measure as skm

    return [(r.label, r.area, r.centroid, r.perimeter, r.intensity_mean)
            for r in skm.regionprops(labels, intensity_image=image)]


def test_measures_taken_at_once_are_regionprops_own(data_dir):
    import cv2

    for k, mask in enumerate(_masks(data_dir)):
        image = np.random.default_rng(k).random(mask.shape).astype(np.float32) * 200
        for labels in (measure.label_particles(measure.clean_mask(mask, 6)),
                       measure.label_particles(mask, exclude_border=False, watershed=True, min_distance=3)):
            found = measure.measure_particles(labels, image, 0.5)
            reference = _regionprops_reference(labels, image)
            assert len(found) == len(reference) > 0
            for p, (label, area, (cy, cx), perimeter, mean) in zip(found, reference):
                assert p["area_px"] == area
                assert p["x"] == pytest.approx(cx, abs=0.0051) and p["y"] == pytest.approx(cy, abs=0.0051)
                assert p["perimeter_px"] == pytest.approx(perimeter or 1.0, rel=1e-12)
                assert p["mean_intensity"] == pytest.approx(mean, rel=1e-5)
                assert p["ecd_nm"] == pytest.approx(0.5 * math.sqrt(4 * area / math.pi))
