"""Scale-bar reading per layout: right / flagged / wrong, and the reader's time per frame.

Runs the reader (pipeline/scale/reader.py, real Tesseract) on the layout corpus of
pipeline/scale/corpus.py (label above or beside a bare bar, band, box, FEI databar,
SEM data line, Zeiss databar, italic µ, a figure shrunk for a paper; many fonts;
8/16 bit; PNG and JPEG q75; some frames shrunk as in a paper), on the real FEI files,
on the real micrographs of ../shared/data/scalebars-real (right = within 2 % of
their truth.json, whose bar_px is read at half contrast) and on held-out published
figures the project's renderer did not draw (tests/heldout_figures.py; within 2 %) and
on small labels in every Latin font installed (tests/font_sweep.py; within 2 %) and on
bars drawn before the noise (tests/noisy_figures.py; within 2 %) and on labels with a
decimal point or comma, beside or far from their bar (tests/decimal_labels.py; within 2 %) and on
held-out figures whose bar and label are drawn in colour, or edged in the other colour, or
enlarged 2-3x after they were drawn (within 2 %).
"flagged" is "not read": no bar, or confident=False.
Right = nm/px within 1 % of the truth; flagged = no bar or confident=False;
wrong = confident and off by more than 1 %.  Writes bench/scale_results.json;
bench/run.py puts its table into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

import tifffile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/heldout_figures.py: figures the project's renderer did not draw
from psdwatch.pipeline.scale.corpus import LAYOUTS, corpus_frame
from psdwatch.pipeline.analyse import read_scale_bar
from psdwatch.pipeline.io.image import UnreadableImage, load_image
from psdwatch.pipeline.scale.parse import NM
from psdwatch.pipeline.scale.reader import find_scale_bar
from psdwatch.pipeline.runtime.cpu import describe as describe_cpu

FEI_NM_PER_PX = 3.3724e-06 * 1e9  # Scan/PixelWidth of the Helios files


def verdict(result, nm_per_px: float, tolerance: float = 0.01) -> str:
    """right / flagged / wrong of one reading against the truth's nm/px."""
    if result is None or not result.confident:
        return "flagged"
    return "right" if abs(result.nm_per_px / nm_per_px - 1) <= tolerance else "wrong"


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


REAL_SET = REPO.parent / "shared" / "data" / "scalebars-real"
REAL_TOLERANCE = 0.02  # the truth's bar_px is itself read off soft ends at half contrast
_UNIT_NM = {**NM, "um": NM["µm"], "μm": NM["µm"]}  # the reader's units, and the micro sign's other spellings


class TruthError(ValueError):
    """A folder's truth.json that cannot be measured against (real_truth), in one line."""


def _positive(v: object) -> bool:
    """A positive number, not a bool (JSON's true would pass as 1)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def real_truth(folder: Path) -> dict[str, dict]:
    """``folder``'s truth.json, checked whole before any image is read: a non-empty object
    of file name -> {value, unit, bar_px}, value and bar_px positive numbers, the unit one
    of _UNIT_NM, every file there.  TruthError with a one-line reason otherwise."""
    truth_file = folder / "truth.json"
    if not truth_file.is_file():
        raise TruthError(f"{folder} has no truth.json (file -> value, unit, bar_px)")
    try:
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TruthError(f"{truth_file}: not readable JSON ({e})") from None
    if not isinstance(truth, dict) or not truth:
        raise TruthError(f"{truth_file}: must be a non-empty object of file name -> value, unit, bar_px")
    for name, t in truth.items():
        if not isinstance(t, dict) or t.get("unit") not in _UNIT_NM or not _positive(t.get("value")) \
                or not _positive(t.get("bar_px")):
            raise TruthError(f"{truth_file}: {name}: needs value and bar_px (positive numbers) and unit "
                             f"(one of {', '.join(_UNIT_NM)})")
        if not (folder / name).is_file():
            raise TruthError(f"{truth_file}: {name}: no such file in {folder}")
    return truth


def real_set(folder: Path = REAL_SET, detail: bool = False) -> dict:
    """The real micrographs of ``folder`` (../shared/data/scalebars-real unless named),
    loaded as psdwatch loads them (RGB and RGBA to grey), against its truth.json
    (``real_truth``: file -> value, unit, bar_px, the format of scalebars-real): right =
    nm/px within 2 %; a file psdwatch cannot read counts as flagged, with its reason.

    Any folder of that form is measured alike (``--real DIR``): a lab's own micrographs,
    or real ones kept out of the repo for their licences, are how the reader is judged
    on frames it was not tuned on.  ``detail`` prints each file's reading, its error
    and its doubts beside its verdict."""
    rows = {}
    for name, t in sorted(real_truth(folder).items()):
        npp = t["value"] * _UNIT_NM[t["unit"]] / t["bar_px"]
        try:
            loaded = load_image(folder / name)
        except UnreadableImage as e:
            result, why = None, f"unreadable: {e}"
        else:
            result = read_scale_bar(loaded.data, loaded.meta.get("databar"), loaded.colour)
            why = "no bar with a label found"
        rows[name] = verdict(result, npp, REAL_TOLERANCE)
        line = f"{rows[name]:8s} {name}"
        if detail:
            error = result and round(100 * (result.nm_per_px / npp - 1), 2)
            line += f"  {result and result.text!r} {error} % {(list(result.reasons) if result else [why])[:3]}"
        print(line, flush=True)
    counts = collections.Counter(rows.values())
    return {"files": rows, "counts": {k: counts[k] for k in ("right", "flagged", "wrong")}}


def resampled_set() -> dict:
    """The real frames changed as figures are (tests/resampled_real.py: enlarged, shrunk by a
    non-whole factor, blurred, JPEG, noise, turned, gamma): right / flagged / wrong per change."""
    from tests import resampled_real
    if not resampled_real.REAL.is_dir():
        return {}
    table, wrong = {}, []
    for transform in resampled_real.TRANSFORMS:
        counts = collections.Counter()
        for name in resampled_real.names():
            image, npp = resampled_real.frame(name, transform)
            result = find_scale_bar(image)
            v = verdict(result, npp, REAL_TOLERANCE)
            counts[v] += 1
            if v == "wrong":
                wrong.append({"transform": transform, "file": name, "read": result.text})
        table[transform] = {k: counts[k] for k in ("right", "flagged", "wrong")}
        print(f"resampled {transform:14s} {table[transform]}", flush=True)
    total = collections.Counter()
    for row in table.values():
        total.update(row)
    return {"per_transform": table, "counts": {k: total[k] for k in ("right", "flagged", "wrong")}, "wrong_frames": wrong}


HELDOUT_FRAMES = 60


def heldout_set(n: int = HELDOUT_FRAMES) -> dict:
    """Held-out figures (tests/heldout_figures.py: PIL labels on real textures, 2-3 px bars,
    shrunk by a non-whole factor, JPEG): right = nm/px within 2 % of the drawn bar."""
    from tests.heldout_figures import frame, grey
    counts, wrong, times = collections.Counter(), [], []
    for i in range(n):
        rgb, t = frame(i)
        t0 = time.perf_counter()
        result = find_scale_bar(grey(rgb))
        times.append(time.perf_counter() - t0)
        v = verdict(result, t["nm_per_px"], REAL_TOLERANCE)
        counts[v] += 1
        if v == "wrong":
            wrong.append({"index": i, "label": t["text"], "read": result.text})
    print(f"held-out figures {dict(counts)}", flush=True)
    return {"frames": n, "counts": {k: counts[k] for k in ("right", "flagged", "wrong")}, "wrong_frames": wrong,
            "reader_s_median": statistics.median(times), "reader_s_max": max(times)}


FONT_SWEEP_FRAMES = 300
NOISY_FRAMES = 60
DECIMAL_FRAMES = 200


def seeded_set(frame, n: int, name: str) -> dict:
    """Frames 0..n-1 of a seeded generator (``frame(i)`` -> (grey image, truth)) read:
    right / flagged / wrong at nm/px within 2 %, and the wrong ones named."""
    counts, wrong = collections.Counter(), []
    for i in range(n):
        img, t = frame(i)
        result = find_scale_bar(img)
        v = verdict(result, t["nm_per_px"], REAL_TOLERANCE)
        counts[v] += 1
        if v == "wrong":
            wrong.append({"index": i, "label": t["text"], "font": t.get("font"), "read": result.text})
    print(f"{name} {dict(counts)} {wrong}", flush=True)
    return {"frames": n, "counts": {k: counts[k] for k in ("right", "flagged", "wrong")}, "wrong_frames": wrong}


def font_sweep(n: int = FONT_SWEEP_FRAMES) -> dict:
    """Small labels (5-15 px) in the 56 Latin fonts installed (tests/font_sweep.py), flat
    noisy grounds, JPEG half the time: where OCR slips."""
    from tests.font_sweep import frame
    return seeded_set(frame, n, "font sweep")


def noisy_set(n: int = NOISY_FRAMES) -> dict:
    """Bars and labels drawn before the noise (tests/noisy_figures.py): a bar broken by the
    noise, a bar that runs into a particle, labels under noise."""
    from tests.noisy_figures import frame
    return seeded_set(frame, n, "noisy figures")


def decimal_set(n: int = DECIMAL_FRAMES) -> dict:
    """Labels with a decimal point or comma ('0.25 µm', '1,5 µm', '1,000 nm'), beside or
    far from their bar, on frames 140-600 px tall (tests/decimal_labels.py): a lost point
    or lost leading digits read 2-10x off."""
    from tests.decimal_labels import frame
    return seeded_set(frame, n, "decimal labels")


BLURRED_FRAMES = 60


def blurred_set(n: int = BLURRED_FRAMES) -> dict:
    """Figures blurred by 0.7-1.3 px after the bar was drawn (tests/blurred_labels.py): thin
    labels over thick bars, bold labels over 1-2 px H-bars; written before the reader was
    measured on them, never tuned on."""
    from tests.blurred_labels import frame
    from tests.heldout_figures import in_grey
    return seeded_set(in_grey(frame), n, "blurred figures")


ENLARGED_FRAMES = 60


def enlarged_set(n: int = ENLARGED_FRAMES) -> dict:
    """Held-out figures enlarged 2, 2.5 or 3x after they were drawn (tests/heldout_figures.py,
    ``enlarged``): bars 4-10 px thick, labels two or three times as tall; the frames a
    reader tuned at figure size meets when a figure is enlarged for print."""
    from tests.heldout_figures import enlarged, frame
    return seeded_set(enlarged(frame), n, "enlarged figures")


COLOUR_FRAMES = 60


def colour_set(n: int = COLOUR_FRAMES) -> dict:
    """Held-out figures whose bar and label are drawn in colour (tests/heldout_figures.py,
    colour=...; JPEG with colour at half resolution), written as PNG and read as any file
    is (grey, then the colour channels: analyse.read_scale_bar)."""
    import tempfile

    import cv2

    from tests.heldout_figures import COLOURS, frame
    counts, wrong = collections.Counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            rgb, t = frame(i, colour=COLOURS[i % len(COLOURS)])
            path = Path(tmp) / f"{i}.png"
            cv2.imwrite(str(path), rgb[..., ::-1])
            loaded = load_image(path)
            result = read_scale_bar(loaded.data, None, loaded.colour)
            v = verdict(result, t["nm_per_px"], REAL_TOLERANCE)
            counts[v] += 1
            if v == "wrong":
                wrong.append({"index": i, "label": t["text"], "read": result.text})
    print(f"coloured figures {dict(counts)} {wrong}", flush=True)
    return {"frames": n, "counts": {k: counts[k] for k in ("right", "flagged", "wrong")}, "wrong_frames": wrong}


OUTLINED_FRAMES = 60


def outlined_set(n: int = OUTLINED_FRAMES) -> dict:
    """Held-out figures whose bar and label are edged in the other colour, on the image
    itself (tests/heldout_figures.py, outlined=True): an end's rim pixel mixes the bar's
    grey with the outline's, and a counter of a glyph holds the texture."""
    from tests.heldout_figures import frame, in_grey
    return seeded_set(in_grey(frame, outlined=True), n, "outlined figures")


BARLESS = REPO.parent / "shared" / "data" / "catalysts-boxed" / "images"


def barless_frames() -> dict:
    """Real 2048² catalyst frames with no scale bar (../shared/data/catalysts-boxed): the
    reader's time where it finds nothing (the words then searched in the whole bottom
    and top bands, on a textured support); any confident reading there is wrong."""
    if not BARLESS.is_dir():
        return {}
    out: dict = {"frames": [], "seconds": [], "confident": 0}
    for path in sorted(BARLESS.glob("*.jpg")):
        data = load_image(path).data
        if data.shape != (2048, 2048):
            continue
        out["frames"].append(path.name)
        t0 = time.perf_counter()
        result = read_scale_bar(data, None)
        out["seconds"].append(round(time.perf_counter() - t0, 3))
        out["confident"] += bool(result is not None and result.confident)
    print(f"bar-less 2048² frames {out}", flush=True)
    return out


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
    parser.add_argument("--real", type=Path, metavar="DIR",
                        help="only read the real micrographs of DIR against its truth.json "
                             "(scalebars-real's format), file by file; writes nothing; exit 1 "
                             "where a reading is wrong, 2 where the truth is unusable")
    args = parser.parse_args()
    if args.real is not None:
        try:
            counts = real_set(args.real, detail=True)["counts"]  # its truth checked whole before any image is read
        except TruthError as e:
            parser.error(str(e))
        print(json.dumps(counts))
        return 1 if counts["wrong"] else 0
    from benchmarks_page import bench_run

    from psdwatch.pipeline.scale.second_reader import available

    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "run": bench_run(),
               "machine": f"{describe_cpu()}; {os.cpu_count()} cores",  # reader times differ by machine: name it
               # the optional `[ocr]` extra changes the held-out and real counts: say whether it ran
               "second_reader": "rapidocr-onnxruntime" if available() else None,
               **corpus(args.per_layout),
               "real_fei_files": real_files(),
               "real_set": real_set() if (REAL_SET / "truth.json").is_file() else {}, "real_resampled": resampled_set(),
               "heldout_figures": heldout_set(), "font_sweep": font_sweep(),
               "noisy_figures": noisy_set(), "decimal_labels": decimal_set(), "coloured_figures": colour_set(),
               "outlined_figures": outlined_set(), "blurred_figures": blurred_set(), "enlarged_figures": enlarged_set(),
               "barless_2048": barless_frames()}
    total = collections.Counter()
    for row in results["per_layout"].values():
        total.update(row)
    results["total"] = dict(total)
    (REPO / "bench" / "scale_results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    wrong_real = (results["real_set"].get("counts", {}).get("wrong", 0) + results["heldout_figures"]["counts"]["wrong"]
                  + results["real_resampled"].get("counts", {}).get("wrong", 0)
                  + results["font_sweep"]["counts"]["wrong"] + results["noisy_figures"]["counts"]["wrong"]
                  + results["decimal_labels"]["counts"]["wrong"] + results["coloured_figures"]["counts"]["wrong"]
                  + results["outlined_figures"]["counts"]["wrong"] + results["blurred_figures"]["counts"]["wrong"]
                  + results["enlarged_figures"]["counts"]["wrong"]
                  + results["barless_2048"].get("confident", 0))
    return 0 if not results["wrong_frames"] and not wrong_real and "wrong" not in results["real_fei_files"].values() else 1


if __name__ == "__main__":
    sys.exit(main())
