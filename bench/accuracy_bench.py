"""Accuracy figures of `make bench`: the classical engine on the real Pt/alumina patches, and
both engines on synthetic frames with their truth (d10/d50/d90 errors, IoU, step times).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import tifffile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from psdwatch.pipeline import metrics  # noqa: E402
from psdwatch.pipeline.analyse import analyse_image  # noqa: E402
from psdwatch.pipeline.measure import psd  # noqa: E402
from psdwatch.pipeline.segment import classical  # noqa: E402
from psdwatch.pipeline.synth import STYLES, SynthSpec, synth_image, write_example  # noqa: E402

DATA = REPO.parent / "shared" / "data"

def classical_on_real_patches() -> dict:
    """The classical engine against the human masks of the real Pt/alumina patches."""
    total = np.zeros(4, np.int64)
    empty_fp = 0
    patches = sorted((DATA / "pt-alumina-haadf").glob("ptal_[0-9][0-9][0-9].tif"))
    for path in patches:
        image = tifffile.imread(path)
        truth = cv2.imread(str(path.with_name(path.stem + "_mask.png")), cv2.IMREAD_GRAYSCALE) > 0
        pred = classical.segment_classical(image)
        total += metrics.confusion(pred, truth)
        if not truth.any():
            empty_fp += int(pred.sum())
    return {"patches": len(patches), **{f"classical_real_{k}": v for k, v in metrics.scores(total).items()},
            "classical_real_fp_px_on_empty_patches": empty_fp}


def synthetic_accuracy(outdir: Path, count: int, size: int, settings, model=None, prefix: str = "") -> dict:
    """Scale right/flagged/wrong and PSD errors on synthetic images with truth,
    with the classical engine (model None) or the given U-Net; keys get `prefix`."""
    if model is not None:
        settings = replace(settings, engine="unet")
    rows = []
    for i in range(count):
        spec = SynthSpec(size=size, bits=(8, 16)[i % 2], style=STYLES[i % len(STYLES)], seed=5000 + i)
        image, mask, truth = synth_image(spec)
        path = write_example(outdir, f"bench_{i:03d}", image, mask, truth)
        analysis = analyse_image(path, settings, model)
        true_psd = psd.summarise([p["ecd_nm"] for p in truth["particles"]])
        rel = (abs(analysis.nm_per_px - truth["nm_per_px"]) / truth["nm_per_px"]
               if analysis.nm_per_px else None)
        verdict = ("flagged" if analysis.scale_source != "ocr"
                   else "right" if rel is not None and rel <= 0.01 else "wrong")
        row = {"style": spec.style, "bits": spec.bits, "scale": verdict, "scale_err": rel,
               "timings": analysis.timings, "iou": metrics.scores(metrics.confusion(analysis.mask, mask))["iou"]}
        if analysis.nm_per_px and analysis.psd["n"]:
            # PSD error measured with the true scale, so it isolates segmentation.
            factor = truth["nm_per_px"] / analysis.nm_per_px
            for key in ("d10", "d50", "d90"):
                row[f"{key}_err"] = analysis.psd[key] * factor / true_psd[key] - 1
        rows.append(row)
        print(f"  synth {i:3d} {spec.style:5s} {spec.bits:2d}-bit scale {verdict:7s} "
              f"d50 err {row.get('d50_err', float('nan')):+.3f} iou {row['iou']:.3f}", flush=True)
    out = {f"scale_{v}": sum(r["scale"] == v for r in rows) for v in ("right", "flagged", "wrong")}
    out["scale_by_style"] = {s: {v: sum(r["scale"] == v for r in rows if r["style"] == s)
                                 for v in ("right", "flagged", "wrong")} for s in STYLES}
    for key in ("d10_err", "d50_err", "d90_err"):
        errs = [abs(r[key]) for r in rows if key in r]
        out[f"synth_{key}_median"] = statistics.median(errs) if errs else None
        out[f"synth_{key}_max"] = max(errs) if errs else None
    out["synth_iou_median"] = statistics.median(r["iou"] for r in rows)
    out["step_s_median"] = {k: statistics.median(r["timings"][k] for r in rows) for k in rows[0]["timings"]}
    out["end_to_end_s_%d" % size] = statistics.median(sum(r["timings"].values()) for r in rows)
    return {prefix + k: v for k, v in out.items()}
