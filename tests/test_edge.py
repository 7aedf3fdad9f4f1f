"""The profile edge: sizes as the particles are, whatever their shape, on real frames of
the synthetic generator (spheres, ellipsoids, faceted, flat-topped) with exact truth,
through the real pipeline, the real CLI, a real SQLite store and its CSV and page."""

from __future__ import annotations

import csv
import hashlib
import json

import cv2
import numpy as np
import pytest
import tifffile
from skimage import measure as skmeasure

from psdwatch.daemon import report
from psdwatch.daemon import store
from psdwatch.daemon.cli import main
from psdwatch.daemon.config import ConfigError, load_config
from psdwatch.pipeline.measure import edge, particles as measure
from psdwatch.pipeline.analyse import analyse_array, analysis_record
from psdwatch.pipeline.settings import Settings
from psdwatch.pipeline.synth import SynthSpec, synth_image


def frame(shape: str, background: str = "dark", d_px: float = 25, seed: int = 11, size: int = 1024):
    return synth_image(SynthSpec(size=size, background=background, d_median_px=d_px, seed=seed, shape=shape))


def measured(image, truth, edge_kind: str):
    analysis = analyse_array(image, Settings(engine="classical", edge=edge_kind, bootstrap=0),
                             nm_per_px=truth["nm_per_px"])
    true_d50 = float(np.median([p["ecd_nm"] for p in truth["particles"]]))
    return analysis, analysis.psd["d50"] / true_d50 - 1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("shape,background", [("sphere", "dark"), ("sphere", "textured"),
                                              ("ellipsoid", "dark"), ("ellipsoid", "textured")])
def test_spheres_and_ellipsoids_measure_their_true_size_at_the_profile_edge(shape, background):
    image, truth_mask, truth = frame(shape, background)
    at_mask, error_mask = measured(image, truth, "mask")
    at_profile, error_profile = measured(image, truth, "profile")
    assert error_mask < -0.04, error_mask            # the half-height edge: spheres come out small
    assert abs(error_profile) < 0.03, error_profile
    assert iou(at_profile.mask, truth_mask) >= 0.9 > iou(at_mask.mask, truth_mask)
    assert len(at_profile.particles) == len(at_mask.particles)


@pytest.mark.parametrize("background,d_px", [("dark", 25), ("textured", 25), ("dark", 60)])
def test_flat_topped_particles_stay_within_3_percent(background, d_px):
    image, truth_mask, truth = frame("flat", background, d_px)
    analysis, error = measured(image, truth, "profile")
    assert abs(error) < 0.03, error
    assert iou(analysis.mask, truth_mask) >= 0.9


def test_every_particle_says_which_edge_and_the_json_counts_those_that_kept_the_mask():
    image, truth_mask, _ = synth_image(SynthSpec(size=512, background="textured", d_median_px=9, seed=4,
                                                 shape="mixed", coverage=0.15))
    image = image.astype(np.float32)
    bright = float(np.percentile(image[truth_mask], 90))
    free = np.argwhere(cv2.dilate(truth_mask.astype(np.uint8), np.ones((25, 25), np.uint8)) == 0)
    spots = free[np.random.default_rng(0).choice(len(free), 6, replace=False)]
    for y, x in spots:                      # 3 x 4 px specks: too small to fit a profile to
        if 20 < y < 490 and 20 < x < 490:
            image[y:y + 3, x:x + 4] = bright
    analysis = analyse_array(image, Settings(engine="classical", bootstrap=0))
    record = analysis_record(analysis, "S")
    kinds = [p["edge"] for p in record["particles"]]
    assert set(kinds) == {"profile", "mask"} and len(kinds) > 50
    summary = record["edge"]
    assert summary["convention"] == "profile"
    assert summary["profile"] == kinds.count("profile") and summary["kept_mask"] == kinds.count("mask")
    assert summary["kept_mask_why"].get("too_small", 0) >= 1
    assert sum(summary["kept_mask_why"].values()) == summary["kept_mask"]
    assert set(summary["kept_mask_why"]) <= {"too_small", "blurred", "cut", "noisy", "no_fit", "folded"}
    assert 0.5 <= summary["blur_px"] <= 2.8
    on_mask = analysis_record(analyse_array(image, Settings(engine="classical", bootstrap=0, edge="mask")), "S")
    assert on_mask["edge"]["convention"] == "mask" and {p["edge"] for p in on_mask["particles"]} == {"mask"}


def test_touching_particles_stay_apart_in_the_grown_mask():
    mask = np.zeros((80, 120), bool)
    yy, xx = np.mgrid[:80, :120]
    image = np.full(mask.shape, 10.0)
    for cx in (40.0, 71.0):                      # true radius 15: 1 px apart
        r = np.hypot(yy - 40, xx - cx)
        image += 60 * np.sqrt(np.clip(1 - (r / 15) ** 2, 0, None))
        mask |= r < 12.5                         # segmented at about half height
    image = cv2.GaussianBlur(image, (0, 0), 1.0) + np.random.default_rng(0).normal(0, 1.0, mask.shape)
    grown, fit = edge.profile_edge(image, mask, None)
    labels = measure.label_particles(grown > 0, exclude_border=False)
    assert labels.max() == 2 and fit.counts.get("profile") == 2
    radii = np.sqrt(np.bincount(labels.ravel())[1:] / np.pi)
    assert np.all(np.abs(radii - 15) < 1.0), radii   # grown to the true edge, minus the gap


def test_imagej_on_the_written_mask_gives_the_same_particles_and_sizes(tmp_path, capsys):
    image, _, truth = frame("sphere", "dark", 20, seed=3, size=768)
    path = tmp_path / "spheres.tif"
    tifffile.imwrite(path, image)
    config = tmp_path / "c.toml"
    config.write_text(f'[segment]\nengine = "classical"\n[scale]\nnm_per_px = {truth["nm_per_px"]}\n')
    assert main(["process", str(path), "--config", str(config), "--json", "--mask-out",
                 str(tmp_path / "m.png")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["edge"]["convention"] == "profile" and record["edge"]["profile"] > 0
    written = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_GRAYSCALE) > 0
    # ImageJ's Analyze Particles: 8-connected, holes included, edge particles excluded
    labels = skmeasure.label(written, connectivity=2)
    edge_labels = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    areas = sorted(r.area for r in skmeasure.regionprops(labels) if r.label not in edge_labels)
    assert areas == sorted(p["area_px"] for p in record["particles"])


def test_the_store_csv_and_page_say_which_edge(tmp_path):
    image, _, truth = synth_image(SynthSpec(size=512, background="textured", d_median_px=9, seed=4,
                                            shape="mixed", coverage=0.15))
    record = analysis_record(analyse_array(image, Settings(engine="classical", bootstrap=0),
                                           nm_per_px=truth["nm_per_px"]), "S")
    db = store.open_store(tmp_path / "s.sqlite")
    store.enqueue(db, "S/a.tif", "S", 1, 1)
    store.finish_done(db, store.claim_next(db), hashlib.sha256(b"a").hexdigest(), record)
    stored = [r[0] for r in db.execute("SELECT edge FROM particles ORDER BY number").fetchall()]
    assert stored == [p["edge"] for p in record["particles"]]
    page = report.write_sample_report(db, "S", tmp_path / "reports")
    with (tmp_path / "reports" / report.sample_csv_name("S")).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["Edge"] for r in rows] == stored
    html = page.read_text()
    assert (f"{record['edge']['profile']} particles measured at the profile edge" in html
            and f"{record['edge']['kept_mask']} at the segmentation" in html)


def test_the_edge_key_is_checked(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[measure]\nedge = "outline"\n')
    with pytest.raises(ConfigError, match=r"\[measure\] edge"):
        load_config(bad)
    good = tmp_path / "good.toml"
    good.write_text('[measure]\nedge = "mask"\n')
    assert load_config(good).measure.edge == "mask" and load_config().measure.edge == "profile"
