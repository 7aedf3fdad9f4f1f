"""The PSD summary on samples whose distribution is known."""

from __future__ import annotations

import math

import numpy as np

from psdwatch.pipeline.measure import psd


def test_lognormal_sample_recovers_median_and_sigma():
    rng = np.random.default_rng(1)
    d = np.exp(rng.normal(math.log(4.0), math.log(1.4), 4000))
    s = psd.summarise(d)
    assert s["n"] == 4000
    assert abs(s["d50"] - 4.0) / 4.0 < 0.03
    assert abs(s["lognormal_median"] - 4.0) / 4.0 < 0.02
    assert abs(s["lognormal_sigma_g"] - 1.4) < 0.03
    lo, hi = s["d50_ci95"]
    assert lo < s["d50"] < hi and hi - lo < 0.3
    assert s["d10"] < s["d50"] < s["d90"]


def test_bootstrap_is_reproducible():
    d = np.linspace(1, 10, 57)
    assert psd.summarise(d)["d50_ci95"] == psd.summarise(d)["d50_ci95"]


def test_empty_and_few_particles_are_flagged():
    assert psd.summarise([])["n"] == 0
    assert psd.psd_flags(psd.summarise([]), 100) == ["no_particles"]
    assert psd.psd_flags(psd.summarise([3.0, 4.0, 5.0]), 100) == ["few_particles"]
    assert psd.psd_flags(psd.summarise(np.linspace(1, 5, 150)), 100) == []


def test_lognormal_pdf_integrates_to_one():
    d = np.linspace(0.01, 60, 60000)
    area = np.trapezoid(psd.lognormal_pdf(d, 5.0, 1.5), d)
    assert abs(area - 1) < 1e-3
