"""Scale-bar reading per layout: right / flagged / wrong, and the reader's time per frame.

Runs the reader (pipeline/scale.py, real Tesseract) on the layout corpus of
pipeline/bar_corpus.py (label above or beside a bare bar, band, box, FEI databar,
SEM data line, Zeiss databar, italic µ; many fonts; 8/16 bit; PNG and JPEG q75;
some frames shrunk as in a paper) and on the real FEI files of the shared data.
Right = nm/px within 1 % of the truth; flagged = no bar or confident=False;
wrong = confident and off by more than 1 %.  Writes bench/scale_results.json;
bench/run.py puts its table into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

import tifffile

REPO = Path(__file__).resolve().parents[1]
from psdwatch.pipeline.bar_corpus import LAYOUTS, corpus_frame
from psdwatch.pipeline.scale import find_scale_bar

FEI_NM_PER_PX = 3.3724e-06 * 1e9  # Scan/PixelWidth of the Helios files


def verdict(result, nm_per_px: float) -> str:
    if result is None or not result.confident:
        return "flagged"
    return "right" if abs(result.nm_per_px / nm_per_px - 1) <= 0.01 else "wrong"


def corpus(per_layout: int) -> dict:
    table, times, wrong = {}, [], []
    for layout in LAYOUTS:
        counts = collections.Counter()
        for i in range(per_layout):
            image, truth = corpus_frame(layout, i)
            t0 = time.perf_counter()
            result = find_scale_bar(image)
            if image.shape[1] == 2048 and not truth["shrunk"]:
                times.append(time.perf_counter() - t0)
            v = verdict(result, truth["nm_per_px"])
            counts[v] += 1
            if v == "wrong":
                wrong.append({"layout": layout, "index": i, "label": truth["label"], "read": result.text})
        table[layout] = {k: counts[k] for k in ("right", "flagged", "wrong")}
        print(f"{layout:9s} {table[layout]}", flush=True)
    return {"per_layout": table, "frames_per_layout": per_layout, "wrong_frames": wrong,
            "reader_s_per_2048_frame_median": statistics.median(times),
            "reader_s_per_2048_frame_max": max(times)}


def real_files() -> dict:
    out = {}
    for bits in ("8bits", "16bits"):
        path = REPO.parent / "shared" / "data" / "formats" / f"FEI-Helios-Ebeam-{bits}.tif"
        if path.is_file():
            out[path.name] = verdict(find_scale_bar(tifffile.imread(path)), FEI_NM_PER_PX)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-layout", type=int, default=30)
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), **corpus(args.per_layout), "real_fei_files": real_files()}
    total = collections.Counter()
    for row in results["per_layout"].values():
        total.update(row)
    results["total"] = dict(total)
    (REPO / "bench" / "scale_results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0 if not results["wrong_frames"] else 1


if __name__ == "__main__":
    sys.exit(main())
