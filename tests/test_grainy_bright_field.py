"""Bright-field frames on a grainy carbon film: the histogram no longer tells (the grain
outweighs the particles), the compact dark details still do. On the real frames."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from psdwatch.pipeline.segment import contrast
from psdwatch.pipeline.io.image import load_image

BRIGHT_FIELD = ("Pt_carbon1", "PtC1")


def with_grain(data: np.ndarray, seed: int) -> np.ndarray:
    """The frame on a grainy film: symmetric grain (1.5 px) 1.8 times the frame's
    own spread, so that its grey-level skew is near zero."""
    rng = np.random.default_rng(seed)
    grain = ndi.gaussian_filter(rng.standard_normal(data.shape), 1.5)
    image = np.asarray(data, np.float64)
    return (image + 1.8 * image.std() / grain.std() * grain).astype(np.float32)


@pytest.mark.parametrize("name", BRIGHT_FIELD)
def test_a_real_bright_field_frame_on_a_grainy_film_is_recognised(data_dir, name):
    data = with_grain(load_image(data_dir / "catalysts-boxed" / "images" / f"{name}.jpg").data, 1)
    skew, median = contrast.histogram_features(data)
    assert skew > contrast.MAX_SKEW, skew   # the histogram rule alone would measure it as HAADF
    is_bf, why = contrast.is_bright_field(data, {})
    assert is_bf and "grainy" in why, (skew, median, contrast.dark_detail_balance(data))


def test_no_real_haadf_frame_is_taken_for_bright_field_with_or_without_grain(data_dir, patches):
    catalysts = [p for p in sorted((data_dir / "catalysts-boxed" / "images").glob("*.jpg"))
                 if p.stem not in BRIGHT_FIELD]
    assert len(catalysts) == 13 and len(patches) == 45
    for i, path in enumerate(catalysts + patches):
        data = load_image(path).data
        for frame in (data, with_grain(data, i)):
            is_bf, why = contrast.is_bright_field(frame, {})
            assert not is_bf, (path.name, why)


@pytest.mark.parametrize("edge", ["profile", "mask"])
def test_a_bright_field_frame_is_flagged_and_its_json_names_the_configured_edge(data_dir, edge):
    """The real bright-field frame is flagged, no particles are measured, and the JSON's
    edge says the convention configured (not 'mask' by default, as when the analysis
    stopped before the edge step)."""
    from psdwatch.pipeline.analyse import analyse_image, analysis_record
    from psdwatch.pipeline.settings import Settings

    analysis = analyse_image(data_dir / "catalysts-boxed" / "images" / "PtC1.jpg", Settings(engine="classical", edge=edge))
    record = analysis_record(analysis, "catalysts")
    assert "bright_field" in record["flags"] and record["particles"] == []
    assert record["edge"]["convention"] == edge and record["edge"]["kept_mask"] == 0
