"""Touching particles cut apart at their necks (pipeline/measure/necks.py), and only there:
pairs of touching spheres become two particles, one rounded or rough particle stays one,
and the written mask shows the cut so that connected components find the same particles."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from psdwatch.pipeline.analyse import analyse_array
from psdwatch.pipeline.measure import necks
from psdwatch.pipeline.measure.particles import clean_labels, label_particles
from psdwatch.pipeline.settings import Settings


def disks(shape: tuple[int, int], circles: list[tuple[float, float, float]]) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.any([(yy - y) ** 2 + (xx - x) ** 2 < r * r for y, x, r in circles], axis=0)


def components(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


@pytest.mark.parametrize("circles", [
    [(40, 50, 25), (40, 98, 24)],                 # two equal spheres touching
    [(40, 40, 12), (40, 81, 30)],                 # a small one on a large one
    [(30, 30, 10), (30, 48.5, 9), (46, 39, 10)],    # three in a cluster
])
def test_touching_spheres_become_separate_particles(circles):
    mask = disks((100, 160), circles)
    cut = necks.separate_at_necks(mask, 0.3)
    assert components(mask) == 1
    assert components(cut) == len(circles)
    # each part keeps nearly all of its own disk: only the cut lines and the lens it
    # shares with a neighbour are lost (a 10 px disk between two others: 10 %)
    _, parts = cv2.connectedComponents(cut.astype(np.uint8), connectivity=8)
    for y, x, r in circles:
        own = parts[int(y), int(x)]
        assert own > 0
        assert abs((parts == own).sum() / (math.pi * r * r) - 1) < 0.12


@pytest.mark.parametrize("name", ["overlapping", "ellipse", "rough", "crescent"])
def test_one_particle_stays_one(name):
    yy, xx = np.mgrid[:120, :200]
    if name == "overlapping":                      # two bodies fused with a wide waist
        mask = disks((120, 200), [(60, 80, 30), (60, 115, 28)])
    elif name == "ellipse":
        mask = ((yy - 60) / 25) ** 2 + ((xx - 100) / 80) ** 2 < 1
    elif name == "rough":                          # a faceted, bumpy outline
        theta = np.arctan2(yy - 60, xx - 100)
        mask = np.hypot(yy - 60, xx - 100) < 40 * (1 + 0.08 * np.sin(7 * theta) + 0.05 * np.cos(11 * theta))
    else:
        mask = disks((120, 200), [(60, 100, 40)]) & ~disks((120, 200), [(60, 125, 35)])
    assert components(necks.separate_at_necks(mask, 0.3)) == 1


def test_neck_depth_decides_how_narrow_a_waist_must_be():
    mask = disks((100, 200), [(50, 60, 30), (50, 126, 30)]) | (np.abs(np.mgrid[:100, :200][0] - 50) < 12)
    mask &= disks((100, 200), [(50, 93, 60)])   # two bodies joined by a bar of half their width
    assert components(necks.separate_at_necks(mask, 0.3)) == 2
    assert components(necks.separate_at_necks(mask, 0.7)) == 1


def test_holes_are_filled_only_inside_one_particle():
    labels = np.zeros((60, 60), np.int32)
    labels[10:50, 10:50] = 1
    labels[20:40, 20:40] = 0                       # particle 1 is a frame ...
    labels[22:38, 22:38] = 2                       # ... around particle 2, a gap between them
    labels[28:32, 28:32] = 0                       # a hole in particle 2
    cleaned = clean_labels(labels, 6)
    assert cleaned[30, 30]                         # enclosed by one particle: filled
    assert not cleaned[21, 30]                     # closed in by two: stays support
    assert components(cleaned) == 2


def sphere_pairs(seed: int = 7) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """A HAADF-like frame of touching projected spheres (thickness 2 sqrt(R² - r²)),
    blurred and noisy: the image, its true outline and the true diameters (px)."""
    rng = np.random.default_rng(seed)
    size = 512
    thickness = np.zeros((size, size))
    truth = np.zeros((size, size), bool)
    diameters = []
    yy, xx = np.mgrid[:size, :size]
    for row in range(6):
        for col in range(5):
            r1, r2 = rng.uniform(9, 16, 2)
            y, x = 45 + 80 * row, 50 + 95 * col
            for cy, cx, r in ((y, x, r1), (y + rng.uniform(-4, 4), x + r1 + r2 - 0.5, r2)):
                rho2 = (yy - cy) ** 2 + (xx - cx) ** 2
                thickness = np.maximum(thickness, 2 * np.sqrt(np.clip(r * r - rho2, 0, None)))
                truth |= rho2 < r * r
                diameters.append(2 * r)
    blurred = cv2.GaussianBlur(thickness / thickness.max(), (0, 0), 1.0)
    image = 20 + 100 * blurred + rng.normal(0, 2.5, thickness.shape)
    return image, truth, diameters


def test_a_frame_of_touching_spheres_is_counted_and_sized_right():
    image, truth, diameters = sphere_pairs()
    merged = analyse_array(image, Settings(engine="classical", edge="profile", neck_split=0.0, bootstrap=0),
                           nm_per_px=1.0)
    split = analyse_array(image, Settings(engine="classical", edge="profile", bootstrap=0), nm_per_px=1.0)
    assert len(merged.particles) < 0.7 * len(diameters)           # pairs measured as one particle
    assert len(split.particles) == len(diameters)
    assert abs(split.psd["d50"] / np.median(diameters) - 1) < 0.03
    # the mask written by --mask-out has the cut: its connected components are the particles
    relabelled = label_particles(split.mask)
    assert relabelled.max() == len(split.particles)
    areas = sorted(np.bincount(relabelled.ravel())[1:])
    assert areas == sorted(p["area_px"] for p in split.particles)
