"""The profile edge on the real frames at hand, per engine and per edge.

- catalysts-boxed (13 HAADF frames, one box per particle): a particle found inside a
  box (its centroid in the box, one particle per box) is matched; sqrt(w h) of the box
  is a fair diameter proxy, so the median of ECD / sqrt(box area) over matched
  particles says how the edge moves sizes against the annotator's boxes.
- pt-alumina-haadf (45 patches with human masks): pixel IoU against the masks and the
  median ECD against the masks' own (8-connected components, away from the border).

    .venv/bin/python bench/edge_real.py --engines classical,unet

writes bench/edge_real.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from psdwatch.pipeline.analyse import analyse_array
from psdwatch.pipeline.io.image import load_image
from psdwatch.pipeline.settings import Settings
from psdwatch.pipeline.train.weak_masks import read_yolo_boxes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_eval import REPO, engines  # noqa: E402

DATA = REPO.parent / "shared" / "data"
BRIGHT_FIELD = ("Pt_carbon1", "PtC1")


def box_ratios(particles: list[dict], boxes: np.ndarray) -> list[float]:
    """ECD / sqrt(box area) of each box's one particle (the largest whose centroid is in it)."""
    out = []
    for x0, y0, x1, y1 in boxes:
        inside = [p for p in particles if x0 <= p["x"] <= x1 and y0 <= p["y"] <= y1]
        if inside:
            out.append(max(p["ecd_px"] for p in inside) / np.sqrt((x1 - x0) * (y1 - y0)))
    return out


def catalysts(models: dict) -> dict:
    out: dict = {}
    for path in sorted((DATA / "catalysts-boxed" / "images").glob("*.jpg")):
        if path.stem in BRIGHT_FIELD:
            continue
        data = load_image(path).data
        h, w = data.shape
        boxes = read_yolo_boxes(DATA / "catalysts-boxed" / "labels" / f"{path.stem}.txt", (h, w))
        for engine, model in models.items():
            for edge in ("mask", "profile"):
                a = analyse_array(data, Settings(engine=engine, edge=edge, bootstrap=0), model)
                ratios = box_ratios(a.particles, boxes)
                out.setdefault(f"{engine}/{edge}", {})[path.stem] = {
                    "matched": len(ratios), "boxes": len(boxes),
                    "median_ecd_over_box": round(float(np.median(ratios)), 3) if ratios else None,
                    "kept_mask": (a.checks.get("edge") or {}).get("kept_mask_why"),
                    "n": len(a.particles), "edge_s": round(a.timings.get("edge_s", 0.0), 2),
                    "shape": list(data.shape)}
        print(path.stem, {k: v[path.stem] for k, v in out.items()}, flush=True)
    return out


def patches(models: dict) -> dict:
    out: dict = {}
    for path in sorted((DATA / "pt-alumina-haadf").glob("ptal_???.tif")):
        truth = cv2.imread(str(path.with_name(f"{path.stem}_mask.png")), cv2.IMREAD_GRAYSCALE) > 0
        n, labels, stats, _ = cv2.connectedComponentsWithStats(truth.view(np.uint8), connectivity=8)
        true_d = [np.sqrt(4 * stats[i, 4] / np.pi) for i in range(1, n) if stats[i, 4] >= 6]
        data = load_image(path).data
        for engine, model in models.items():
            for edge in ("mask", "profile"):
                a = analyse_array(data, Settings(engine=engine, edge=edge, bootstrap=0), model)
                row = out.setdefault(f"{engine}/{edge}", {"inter": 0, "union": 0, "d": [], "true_d": []})
                row["inter"] += int((a.mask & truth).sum())
                row["union"] += int((a.mask | truth).sum())
                row["d"] += [p["ecd_px"] for p in a.particles]
                row["true_d"] += true_d
    return {k: {"iou": round(v["inter"] / max(1, v["union"]), 3),
                "median_ecd_px": round(float(np.median(v["d"])), 2) if v["d"] else None,
                "human_median_ecd_px": round(float(np.median(v["true_d"])), 2), "n": len(v["d"])}
            for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", default="classical")
    ap.add_argument("--out", default=str(REPO / "bench" / "edge_real.json"))
    args = ap.parse_args()
    models = engines(args.engines.split(","))
    result = {"pt_alumina": patches(models)}
    print(json.dumps(result["pt_alumina"], indent=1), flush=True)
    result["catalysts"] = catalysts(models)
    summary = {}
    for key, frames in result["catalysts"].items():
        medians = [f["median_ecd_over_box"] for f in frames.values() if f["median_ecd_over_box"]]
        summary[key] = round(float(np.median(medians)), 3)
    result["catalysts_median_of_frame_medians"] = summary
    print(json.dumps(summary), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
