"""Honest validation of the segmentation engines: the old starter, the new one and
the classical engine, each run as `psdwatch process` runs it (size-aware, at the
model's own threshold, border particles left out).

    .venv/bin/python bench/validate_models.py [--old DIR:NAME] [--quick]

- Pixels on the real Pt/alumina patches, by contiguous blocks of 9 in name order
  (neighbouring slices are near copies): every block for the classical engine,
  which is not trained; for the U-Nets a block counts only if the model never
  saw it (both trained on ptal_000-035: the last block, the fixed test set).
- Detection on the real catalyst images of catalysts-boxed: a found particle
  matches a box when their boxes overlap by IoU >= 0.5 (and, more leniently,
  0.3), one to one (Hungarian). Images held out of every training
  (bench/training_data.HELD_OUT) are reported apart from those the new starter
  learnt from through weak masks.
- Sizes against synthetic truth: 2048² frames from seeds no training used,
  particles of 8 to 200 px, dark, textured and bright supports: IoU and the d50
  error at the true scale.
Writes bench/validation.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage import measure

from psdwatch.pipeline import metrics
from psdwatch.pipeline import runtime
from psdwatch.pipeline.analyse import analyse_array
from psdwatch.pipeline.io.image import load_image
from psdwatch.pipeline.runtime.models import load_model
from psdwatch.pipeline.settings import Settings
from psdwatch.pipeline.synth import SynthSpec, synth_image
from psdwatch.pipeline.train.weak_masks import read_yolo_boxes

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_data import BRIGHT_FIELD, HELD_OUT  # noqa: E402

SIZES_PX = (8, 15, 30, 60, 100, 200)
BACKGROUNDS = ("dark", "textured", "bright")


def engines(old: str | None) -> dict:
    """name -> (engine, model or None)."""
    out = {}
    if old:
        folder, name = old.rsplit(":", 1)
        out[name] = ("unet", runtime.prepare_model(load_model(Path(folder), name), runtime="onnxruntime",
                                                   models_dir=Path(folder)))
    live = (REPO / "models" / "LIVE").read_text().strip()
    out[live] = ("unet", runtime.prepare_model(load_model(REPO / "models", live), runtime="onnxruntime",
                                               models_dir=REPO / "models"))
    out["classical"] = ("classical", None)
    return out


def run(data: np.ndarray, engine: tuple, nm_per_px: float | None = None):
    kind, model = engine
    return analyse_array(data, Settings(engine=kind, bootstrap=0), model, nm_per_px)


def patch_blocks(all_engines: dict) -> dict:
    patches = sorted((DATA / "pt-alumina-haadf").glob("ptal_[0-9][0-9][0-9].tif"))
    blocks = [patches[i:i + 9] for i in range(0, len(patches), 9)]
    out = {}
    for name, engine in all_engines.items():
        rows = []
        for k, block in enumerate(blocks):
            total = np.zeros(4, np.int64)
            for path in block:
                truth = cv2.imread(str(path).replace(".tif", "_mask.png"), 0) > 0
                total += metrics.confusion(run(load_image(path).data, engine).mask, truth)
            seen = engine[1] is not None and k < len(blocks) - 1
            rows.append({"block": f"{block[0].stem}-{block[-1].stem[-3:]}", "seen_in_training": seen,
                         **{m: round(v, 4) for m, v in metrics.scores(total).items()}})
        unseen = [r for r in rows if not r["seen_in_training"]]
        out[name] = {"blocks": rows, "mean_unseen_iou": round(float(np.mean([r["iou"] for r in unseen])), 4),
                     "mean_unseen_ppv": round(float(np.mean([r["ppv"] for r in unseen])), 4)}
        print(f"patches  {name:12s} " + "  ".join(f"{r['iou']:.3f}{'*' if r['seen_in_training'] else ''}"
                                                  for r in rows), flush=True)
    return out


def detections(labels: np.ndarray) -> np.ndarray:
    return np.array([[r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]] for r in measure.regionprops(labels)],
                    float).reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def matched(found: np.ndarray, boxes: np.ndarray, threshold: float) -> int:
    if not len(found) or not len(boxes):
        return 0
    iou = box_iou(found, boxes)
    rows, cols = linear_sum_assignment(-iou)
    return int((iou[rows, cols] >= threshold).sum())


def prf(tp: int, n_found: int, n_true: int) -> dict:
    p = tp / n_found if n_found else 0.0
    r = tp / n_true if n_true else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 3)}


def catalysts(all_engines: dict) -> dict:
    images = [p for p in sorted((DATA / "catalysts-boxed" / "images").glob("*.jpg")) if p.stem not in BRIGHT_FIELD]
    out = {}
    for name, engine in all_engines.items():
        per, sums = [], {g: np.zeros((2, 3), int) for g in ("held_out", "weak_masks_trained")}
        for path in images:
            data = load_image(path).data
            boxes = read_yolo_boxes(DATA / "catalysts-boxed" / "labels" / f"{path.stem}.txt", data.shape)
            analysis = run(data, engine)
            found = detections(analysis.labels)
            tps = [matched(found, boxes, t) for t in (0.5, 0.3)]
            group = "held_out" if path.stem in HELD_OUT else "weak_masks_trained"
            for k, tp in enumerate(tps):
                sums[group][k] += (tp, len(found), len(boxes))
            per.append({"image": path.stem, "group": group, "boxes": len(boxes), "found": len(found),
                        "segment_scale": analysis.segment_scale, "flags": analysis.flags,
                        "iou50": prf(tps[0], len(found), len(boxes)), "iou30": prf(tps[1], len(found), len(boxes))})
        out[name] = {"images": per, **{g: {"iou50": prf(*s[0]), "iou30": prf(*s[1])} for g, s in sums.items()}}
        print(f"catalyst {name:12s} held-out F1@0.5 {out[name]['held_out']['iou50']['f1']:.3f} "
              f"(P {out[name]['held_out']['iou50']['precision']:.2f} R {out[name]['held_out']['iou50']['recall']:.2f}), "
              f"F1@0.3 {out[name]['held_out']['iou30']['f1']:.3f}; other 9: F1@0.5 "
              f"{out[name]['weak_masks_trained']['iou50']['f1']:.3f}", flush=True)
    return out


def synthetic(all_engines: dict, size: int) -> dict:
    out = {name: [] for name in all_engines}
    for i, d in enumerate(SIZES_PX):
        spec = SynthSpec(size=size, bits=(8, 16)[i % 2], style=("band", "box", "bare", "fei")[i % 4],
                         seed=880_000 + i, background=BACKGROUNDS[i % 3], d_median_px=d * size / 2048,
                         coverage=0.06)
        image, mask, truth = synth_image(spec)
        true_d50 = float(np.median([p["ecd_nm"] for p in truth["particles"]]))
        for name, engine in all_engines.items():
            t = time.perf_counter()
            a = run(image, engine, truth["nm_per_px"])
            found = [p["ecd_nm"] for p in a.particles]
            iou = float((a.mask & mask).sum() / max(1, (a.mask | mask).sum()))
            out[name].append({"d_px": d, "background": spec.background, "bits": spec.bits, "iou": round(iou, 3),
                              "d50_error_pct": round(100 * (np.median(found) / true_d50 - 1), 1) if found else None,
                              "n": len(found), "n_true": len(truth["particles"]),
                              "segment_scale": a.segment_scale, "seconds": round(time.perf_counter() - t, 1)})
        print(f"synth {d:4d} px {spec.background:8s} " + "  ".join(
            f"{n}: IoU {r[-1]['iou']:.3f} d50 {r[-1]['d50_error_pct']}%" for n, r in out.items()), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="DIR:NAME of the previous starter, to compare with")
    parser.add_argument("--quick", action="store_true", help="1024² synthetic frames instead of 2048²")
    parser.add_argument("--only", choices=("patches", "catalysts", "synthetic"), action="append",
                        help="run only these parts (repeatable); the others keep their last figures")
    args = parser.parse_args()
    all_engines = engines(args.old)
    out = REPO / "bench" / "validation.json"
    result = json.loads(out.read_text()) if out.is_file() else {}
    parts = {"patches": lambda: patch_blocks(all_engines), "catalysts": lambda: catalysts(all_engines),
             "synthetic": lambda: synthetic(all_engines, 1024 if args.quick else 2048)}
    for part in args.only or parts:
        result[part] = parts[part]()
        out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
