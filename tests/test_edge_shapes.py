"""The profile edge on faceted crystals, ellipsoids and rafts: their outline is not a
circle, so the profile is taken along their own outline (pipeline.measure.outline), and
each is measured against the truth it was drawn with."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from psdwatch.pipeline.analyse import analyse_array
from psdwatch.pipeline.measure import edge, outline
from psdwatch.pipeline.measure.particles import label_particles
from psdwatch.pipeline.runtime.models import load_model
from psdwatch.pipeline.settings import Settings
from psdwatch.pipeline.synth import SynthSpec, synth_image


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def live_model():
    """The live model (models/LIVE), as `process` runs it."""
    return load_model(REPO / "models", (REPO / "models" / "LIVE").read_text().strip())


def polygon(size: int, sides: int, circumradius: float, angle: float = 0.3,
            slope: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A faceted crystal seen from above: a regular polygon, flat-topped, its sides sloping
    over the outer `slope` of the circumradius. Thickness (top = 1) and outline (truth)."""
    yy, xx = np.mgrid[:size, :size] - (size / 2 - 0.37)
    theta = np.arctan2(yy, xx) - angle
    sector = theta % (2 * math.pi / sides) - math.pi / sides
    depth = circumradius * math.cos(math.pi / sides) - np.hypot(yy, xx) * np.cos(sector)
    return np.clip(depth / (slope * circumradius), 0, 1), depth >= 0


def image_of(thickness: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """HAADF-like counts: support level, blurred thickness, noise a fortieth of the top."""
    blurred = cv2.GaussianBlur(thickness.astype(np.float64), (0, 0), sigma)
    return 20 + 100 * blurred + np.random.default_rng(seed).normal(0, 2.5, thickness.shape)


def ecd(mask: np.ndarray) -> float:
    return math.sqrt(4 * mask.sum() / math.pi)


@pytest.mark.parametrize("sides,circumradius", [(5, 30), (6, 22), (8, 14)])
def test_a_faceted_crystal_is_measured_at_its_outline(sides, circumradius):
    thickness, truth = polygon(int(4 * circumradius), sides, circumradius)
    image = image_of(thickness, 1.0)
    half_height = image > 70                                  # where every engine draws the edge
    grown, fit = edge.profile_edge(image, half_height, None)
    assert fit.counts == {"profile": 1}
    assert ecd(half_height) / ecd(truth) < 0.93               # the half-height edge: 8-12 % small
    assert abs(ecd(grown > 0) / ecd(truth) - 1) < 0.025
    assert 0.7 <= fit.sigma_px <= 1.4                         # the blur is the probe's, not the facets'
    iou = ((grown > 0) & truth).sum() / ((grown > 0) | truth).sum()
    assert iou > 0.95


def test_the_outline_radius_follows_faces_and_corners():
    thickness, truth = polygon(200, 6, 60)
    labels = label_particles(truth, exclude_border=False)
    s, _ = edge.signed_distance(labels > 0, labels)
    shape = outline.outlines(labels, s)
    assert not shape.folded[1]
    k = int(shape.sectors[1])
    radii = shape.rb[1, :k]
    apothem = 60 * math.cos(math.pi / 6)
    assert radii.max() / radii.min() > 1.08                   # corners out, faces in (60 / 52)
    assert abs(radii.min() - apothem) < 2.0 and abs(radii.max() - 60) < 3.0
    # the outline's own pixels (a ring 1 px wide) map to a ring 1 px wide just inside the
    # equivalent radius, in every direction (a circle's rings would spread them over 8 px)
    ring = np.flatnonzero((labels.ravel() > 0) & (s.ravel() > -1.5))
    rho = outline.star_radius(shape, ring, labels.shape[1], labels.ravel()[ring])
    low, high = np.percentile(rho, (5, 95))
    assert high - low < 1.6 and shape.radius[1] - 2.0 < low < high < shape.radius[1] + 0.5


def test_a_folded_outline_keeps_its_segmented_edge():
    yy, xx = np.mgrid[:160, :160]
    r1, r2 = np.hypot(yy - 80, xx - 80), np.hypot(yy - 80, xx - 102)
    crescent = (r1 < 45) & (r2 > 40)                          # rays from its centre cross it twice
    disc = np.hypot(yy - 80, xx - 80) < 30
    image = 20 + 100 * cv2.GaussianBlur((crescent | disc).astype(np.float64) * 0 + crescent, (0, 0), 1.0)
    labels = label_particles(crescent, exclude_border=False)
    s, _ = edge.signed_distance(labels > 0, labels)
    assert outline.outlines(labels, s).folded[1]
    grown, fit = edge.profile_edge(image, crescent, None)
    assert fit.counts == {"folded": 1} and np.array_equal(grown > 0, crescent)
    disc_labels = label_particles(disc, exclude_border=False)
    ds, _ = edge.signed_distance(disc_labels > 0, disc_labels)
    assert not outline.outlines(disc_labels, ds).folded[1]


def matched_ratio(analysis, truth_mask: np.ndarray) -> float:
    """Median measured / true ECD of the particles found, matched by the truth particle
    under each one's centroid."""
    n, truth_labels = cv2.connectedComponents(truth_mask.astype(np.uint8), connectivity=8)
    true_ecd = np.sqrt(4 * np.bincount(truth_labels.ravel(), minlength=n) / math.pi)
    ratios = [p["ecd_px"] / true_ecd[t] for p in analysis.particles
              if (t := truth_labels[int(round(p["y"])), int(round(p["x"]))])]
    assert len(ratios) > 20
    return float(np.median(ratios))


@pytest.mark.parametrize("shape,background,d_px", [("faceted", "textured", 30), ("raft", "dark", 30),
                                                    ("ellipsoid", "textured", 40), ("sphere", "textured", 40)])
def test_each_synthetic_shape_is_measured_at_its_true_size(shape, background, d_px):
    image, truth_mask, truth = synth_image(SynthSpec(size=1024, background=background, d_median_px=d_px,
                                                     seed=21, shape=shape, coverage=0.08))
    at_mask = analyse_array(image, Settings(engine="classical", edge="mask", bootstrap=0),
                            nm_per_px=truth["nm_per_px"])
    at_profile = analyse_array(image, Settings(engine="classical", edge="profile", bootstrap=0),
                               nm_per_px=truth["nm_per_px"])
    assert abs(matched_ratio(at_profile, truth_mask) - 1) < 0.03
    # where the mask edge is already right (flat rafts) the profile edge may not be more
    # than a percent worse: the frame's one shape is fitted to clipped tops (left out)
    assert abs(matched_ratio(at_profile, truth_mask) - 1) <= abs(matched_ratio(at_mask, truth_mask) - 1) + 0.01


def test_the_live_model_measures_faceted_particles_at_their_size(live_model):
    # bench/edge_eval.py's synth frame of large faceted particles on a dark support
    image, truth_mask, truth = synth_image(SynthSpec(size=2048, background="dark", d_median_px=75, sigma_g=1.6,
                                                     seed=2021, shape="faceted", coverage=0.08))
    analysis = analyse_array(image, Settings(engine="unet", edge="profile", bootstrap=0), live_model,
                             nm_per_px=truth["nm_per_px"])
    assert abs(matched_ratio(analysis, truth_mask) - 1) < 0.03
    true_d50 = float(np.median([p["ecd_nm"] for p in truth["particles"]]))
    assert abs(analysis.psd["d50"] / true_d50 - 1) < 0.05


def sphere_field(radii: list[float], sigma: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray, list]:
    """Projected spheres on a grid (thickness 2 sqrt(R² - r²), top = 1 for the largest),
    blurred by `sigma`, with noise: the image, the mask each sphere's half height draws
    (where every engine puts the edge), and (centre, radius) of each."""
    cell = int(2 * max(radii) + 16)
    cols = int(math.ceil(math.sqrt(len(radii))))
    size = cell * cols
    thickness = np.zeros((size, size))
    mask = np.zeros((size, size), bool)
    yy, xx = np.mgrid[:cell, :cell]
    spheres = []
    for k, r in enumerate(radii):
        y0, x0 = (k // cols) * cell, (k % cols) * cell
        cy, cx = cell / 2 - 0.3, cell / 2 + 0.2
        t = 2 * np.sqrt(np.clip(r * r - (yy - cy) ** 2 - (xx - cx) ** 2, 0, None)) / (2 * max(radii))
        b = cv2.GaussianBlur(t, (0, 0), sigma)
        thickness[y0:y0 + cell, x0:x0 + cell] = t
        mask[y0:y0 + cell, x0:x0 + cell] = b > 0.5 * b.max()
        spheres.append((y0 + cy, x0 + cx, r))
    image = image_of(thickness, sigma, seed)
    return image, mask, spheres


def grown_ecd(grown: np.ndarray, spheres: list) -> np.ndarray:
    labels = grown
    return np.array([ecd(labels == labels[int(round(y)), int(round(x))]) for y, x, _ in spheres])


def test_small_blurred_spheres_take_the_shape_of_the_frames_larger_ones():
    rng = np.random.default_rng(3)
    large = list(rng.uniform(12, 16, 30))
    small = list(rng.uniform(4.5, 6.5, 40))            # radius under six blurs: "blurred"
    image, half_height, spheres = sphere_field(large + small, 1.1)
    grown, fit = edge.profile_edge(image, half_height, None)
    truth = np.array([2 * r for *_, r in spheres])
    is_small = np.arange(len(spheres)) >= len(large)
    at_mask = grown_ecd(label_particles(half_height, exclude_border=False), spheres)
    at_profile = grown_ecd(grown, spheres)
    assert np.median(at_mask[is_small] / truth[is_small]) < 0.93          # half height: small
    assert fit.borrowed.sum() >= 30                                     # the frame lent its shape
    assert abs(np.median(at_profile[is_small] / truth[is_small]) - 1) < 0.04
    assert abs(np.median(at_profile[~is_small] / truth[~is_small]) - 1) < 0.03


def test_without_enough_fitted_particles_blurred_ones_keep_the_mask_edge():
    rng = np.random.default_rng(4)
    image, half_height, spheres = sphere_field(list(rng.uniform(12, 16, 8)) + list(rng.uniform(4.5, 6.5, 30)), 1.1)
    _, fit = edge.profile_edge(image, half_height, None)
    assert fit.counts.get("blurred", 0) >= 25
    assert not fit.borrowed.any()


def test_a_detectors_clip_is_left_out_of_the_profiles():
    """A dark-support frame exposed so that cores saturate: the plateau at the top value
    (and the support at black) is found, and only there; without leaving it out the
    clipped spheres were fitted as flat tops and came out 10 % small."""
    image, truth_mask, truth = synth_image(SynthSpec(size=1024, background="dark", d_median_px=25,
                                                     seed=11, shape="sphere"))
    clipped = edge.clipped_pixels(image)
    assert clipped is not None
    assert set(np.unique(image[clipped])) <= {image.min(), image.max()}
    assert (image[truth_mask] == image.max()).mean() > 0.02          # cores saturate
    at_profile = analyse_array(image, Settings(engine="classical", edge="profile", bootstrap=0),
                               nm_per_px=truth["nm_per_px"])
    assert abs(matched_ratio(at_profile, truth_mask) - 1) < 0.03
    unclipped = (np.arange(64 * 64, dtype=np.uint16) + 100).reshape(64, 64)
    assert edge.clipped_pixels(unclipped) is None                    # each value once: no plateau
