"""BENCHMARKS.md, written from the results files of the benchmark scripts.

`make bench` (bench/all.py) runs every script in one run and names it: each results
file carries that run's id (`PSDWATCH_BENCH_RUN`), and the page says whether all its
figures come from one run. A script run alone (`bench/run.py --only cluster`) stamps
its own id, and the page then names each section's run and date instead of
pretending one: figures from different runs or machines do not compare.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
FILES = {"core": BENCH / "results.json", "scale": BENCH / "scale_results.json",
         "edge": BENCH / "edge_results.json", "reports": BENCH / "report_results.json",
         "archive": BENCH / "archive_results.json"}


def bench_run() -> str:
    """This run's id: the one `make bench` set for all its scripts, else this script's own."""
    return os.environ.get("PSDWATCH_BENCH_RUN") or "alone-" + time.strftime("%Y%m%d-%H%M%S")


def _load(name: str) -> dict:
    path = FILES[name]
    return json.loads(path.read_text()) if path.is_file() else {}


def _runs(results: dict[str, dict]) -> dict[str, str]:
    """Section -> the run its figures come from ("?" where a file predates run ids)."""
    out = {}
    for name, data in results.items():
        if name == "archive":
            ids = {v.get("run") or f"of {v.get('date', '?')}" for v in data.values() if isinstance(v, dict)}
            out[name] = ids.pop() if len(ids) == 1 else "several"
        elif data:  # files written before run ids name their date at least
            out[name] = data.get("run") or f"of {data.get('date', '?')}"
    return out


def write_benchmarks(path: Path = REPO / "BENCHMARKS.md") -> None:
    """The whole page from the results files as they are now."""
    results = {name: _load(name) for name in FILES}
    core, runs = results["core"], _runs(results)
    one = len(set(runs.values())) == 1 and not any(r.startswith("of ") or r == "several" for r in runs.values())
    lines = ["# Benchmarks", ""]
    if one:
        lines += [f"Every figure below comes from one `make bench` run ({next(iter(runs.values()))}), "
                  f"started {core.get('date', '?')} on: {json.dumps(core.get('machine', {}))}", ""]
    else:
        lines += [f"Figures from more than one run (each section names its own): {json.dumps(runs)}. "
                  f"Machine of bench/run.py's figures: {json.dumps(core.get('machine', {}))}", ""]
    lines += ["Times are medians in one process; compare ratios from the same run, not figures",
              "across runs or machines. Quoted elsewhere (README), a figure names this page.", ""]
    for section in (magnifications, scale_bars, edges, cluster, core_table, reports_table, archive_table):
        lines += section(results, None if one else runs)
    path.write_text("\n".join(lines) + "\n")


def _from(runs: dict | None, name: str) -> str:
    """The " (run X)" after a section title; nothing when the whole page is one run (runs None)."""
    return "" if runs is None else f" (run {runs.get(name, '?')})"


def magnifications(results: dict, runs: dict | None) -> list[str]:
    mag = results["core"].get("magnifications")
    if not mag:
        return []
    lines = [f"## U-Net end to end at three magnifications (2048², `psdwatch process` path){_from(runs, 'core')}", "",
             "| particles | end to end s | segment scale | naive s | x naive | mask IoU vs full-res fp32 "
             "| d50 vs full-res | IoU / d50 vs fp32 at the same scale | IoU vs truth (full-res) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, row in mag.items():
        if key.startswith("d") and isinstance(row, dict):
            d50 = row["d50_diff_vs_reference"]
            lines.append(f"| {key[1:]} px | {row['end_to_end_s']:.2f} | {row['segment_scale']:.2f} | "
                         f"{row['naive_end_to_end_s']:.2f} | {row['speedup_vs_naive']:.2f} | "
                         f"{row['mask_iou_vs_reference']:.3f} | {'' if d50 is None else f'{100 * d50:+.1f} %'} | "
                         f"{row.get('mask_iou_vs_fp32_same_scale', float('nan')):.3f} / "
                         f"{100 * (row.get('d50_diff_vs_fp32_same_scale') or 0):+.1f} % | "
                         f"{row['iou_vs_truth']:.3f} ({row['reference_iou_vs_truth']:.3f}) |")
    patches = mag.get("int8_real_patches", {})
    lines += ["", f"`auto` ran the network as **{mag.get('auto_path', '?')}** (pipeline/runtime/fastest.py, timed on "
              "this CPU); the reference is ONNX Runtime fp32 at full resolution."]
    if "iou_min" in patches:
        lines.append(f"int8 against fp32 on the {patches['patches']} real test patches (never used to calibrate it): "
                     f"mask IoU min {patches['iou_min']:.3f}, mean {patches['iou_mean']:.3f}; "
                     f"{patches['int8_speedup_vs_fp32']:.2f}x the fp32 graph's speed.")
    return lines + [""]


def scale_bars(results: dict, runs: dict | None) -> list[str]:
    sr = results["scale"]
    if not sr:
        return []
    lines = [f"## Scale bars (bench/scale_bars.py, {sr['date']}){_from(runs, 'scale')}", "",
             *([f"Machine: {sr['machine']}.", ""] if sr.get("machine") else []),
             f"Rendered corpus, {sr['frames_per_layout']} frames per layout:", "",
             "| layout | right | flagged | wrong |", "| --- | --- | --- | --- |"]
    lines += [f"| {k} | {v['right']} | {v['flagged']} | {v['wrong']} |" for k, v in sr["per_layout"].items()]
    lines += [f"| all | {sr['total'].get('right', 0)} | {sr['total'].get('flagged', 0)} | "
              f"{sr['total'].get('wrong', 0)} |", "",
              f"Reader time per 2048² frame (bar search, label, Tesseract): median "
              f"{sr['reader_s_per_2048_frame_median']:.2f} s, max {sr['reader_s_per_2048_frame_max']:.2f} s. "
              f"Real FEI files: {json.dumps(sr['real_fei_files'])}.", ""]
    if sr.get("barless_2048", {}).get("frames"):
        b = sr["barless_2048"]
        lines += [f"Reader time on {len(b['frames'])} real 2048² catalyst frames with no bar "
                  f"(../shared/data/catalysts-boxed; words then searched in the bottom and top bands): median "
                  f"{statistics.median(b['seconds']):.2f} s, max {max(b['seconds']):.2f} s; "
                  f"confident readings (all wrong): {b['confident']}.", ""]
    if "second_reader" in sr:
        lines += [("Second reader of doubtful labels: " + sr["second_reader"] + " (the optional `[ocr]` extra) installed."
                   if sr["second_reader"] else "Tesseract only (the optional `[ocr]` extra not installed)."), ""]
    for key, title in (("real_set", "Real micrographs of ../shared/data/scalebars-real"),
                       ("heldout_figures", "Held-out figures of tests/heldout_figures.py (PIL labels on real textures, not the project renderer)"),
                       ("font_sweep", "Small labels (5-15 px) in the 56 Latin fonts installed, tests/font_sweep.py"),
                       ("noisy_figures", "Bars and labels drawn before the noise (sigma 8-30), tests/noisy_figures.py"),
                       ("decimal_labels", "Labels with a decimal point or comma, beside or far from their bar, tests/decimal_labels.py"),
                       ("coloured_figures", "Held-out figures with a coloured bar and label, read as PNG files (grey, then colour channels)"),
                       ("outlined_figures", "Held-out figures whose bar and label are edged in the other colour on the image"),
                       ("blurred_figures", "Figures blurred after the bar was drawn (thin labels over thick bars, bold over thin H-bars), tests/blurred_labels.py"),
                       ("enlarged_figures", "Held-out figures enlarged 2, 2.5 or 3x after they were drawn (bars 4-10 px thick)")):
        if sr.get(key):  # right = nm/px within 2 % of the truth
            c = sr[key]["counts"]
            lines += [f"{title} ({sum(c.values())}; right = nm/px within 2 % of the truth): right "
                      f"{c.get('right', 0)}, not read (flagged) {c.get('flagged', 0)}, wrong {c.get('wrong', 0)}.", ""]
        if key == "real_set" and sr.get("real_resampled", {}).get("per_transform"):
            lines += ["The same frames changed as figures are (tests/resampled_real.py; 17 frames each):", "",
                      "| change | right | flagged | wrong |", "| --- | --- | --- | --- |"]
            lines += [f"| {k} | {v['right']} | {v['flagged']} | {v['wrong']} |"
                      for k, v in sr["real_resampled"]["per_transform"].items()]
            lines.append("")
    return lines


def edges(results: dict, runs: dict | None) -> list[str]:
    """bench/edge_eval.py: d50 error by shape and size band, per engine and edge, on frames
    of an independent renderer (bench/edge_render.py) and of pipeline.synth, and the
    issue's sphere frames (20-165 px) with the live U-Net."""
    er = results["edge"]
    if not er.get("tables"):
        return []
    lines = [f"## Where the edge lies: d50 error by shape and size (bench/edge_eval.py, {er.get('date', '?')})"
             f"{_from(runs, 'edge')}", "",
             f"{er['size']}² frames; truth = the geometric outline; d50 error (%) of the particles matched at "
             "their centroid, per true size band (px); IoU of the whole frame. "
             f"{er.get('seconds', '?')} s of CPU.", ""]
    if er.get("check"):
        lines += ["Sphere frames (20-165 px), live U-Net:", "",
                  "| support | median px (20-165: log-uniform) | edge | d50 error | IoU | found / true |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['support']} | {r['median']} | {r['edge']} | {r['d50_error_pct']:+.1f} % | {r['iou']:.3f} | "
                  f"{r['found']} / {r['true']} |" for r in er["check"]]
        lines.append("")
    for table in er["tables"]:
        lines += [table.replace("### ", "### Frames of "), ""]
    return lines


def cluster(results: dict, runs: dict | None) -> list[str]:
    core = results["core"]
    engines = [e for e in ("classical", "unet") if f"cluster_{e}_speedup" in core]
    if not engines:
        return []
    machine = core.get("machine", {})
    lines = [f"## Frames per minute: in process vs a Dask LocalCluster of 2 workers{_from(runs, 'core')}", "",
             f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; analysed and stored with thumbnails by "
             "worker.run_jobs; the cluster's start-up is not in its rate.", "",
             "| engine | frames | in process /min | LocalCluster 2 workers /min | ratio | cluster start-up s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for e in engines:
        lines.append(f"| {e} | {core[f'cluster_{e}_frames']} | {core[f'cluster_{e}_in_process_frames_per_min']:.1f} | "
                     f"{core[f'cluster_{e}_local_2_workers_frames_per_min']:.1f} | "
                     f"{core[f'cluster_{e}_speedup']:.2f} | {core[f'cluster_{e}_startup_s']:.1f} |")
    return lines + [""]


def core_table(results: dict, runs: dict | None) -> list[str]:
    core = results["core"]
    if not core:
        return []
    skip = ("machine", "date", "run", "magnifications", *(k for k in core if k.startswith(("cluster_", "archive_"))))
    return [f"## Accuracy, speed and memory (bench/run.py){_from(runs, 'core')}", "", *_table(core, skip), ""]


def reports_table(results: dict, runs: dict | None) -> list[str]:
    if not results["reports"]:
        return []
    return [f"## Reports (bench/report_bench.py){_from(runs, 'reports')}", "",
            *_table(results["reports"], ("run", "date", "date_from")), ""]


def archive_table(results: dict, runs: dict | None) -> list[str]:
    """bench/archive_bench.py's rows: the cost of one new image as the archive grows."""
    data = results["archive"]
    sizes = sorted((k for k in data if k.isdigit()), key=int)
    if not sizes:
        return []

    def cells(f: Callable[[dict], str]) -> str:
        return " | ".join(f(data[n]) for n in sizes)

    def new(k: str) -> Callable[[dict], str]:
        return lambda r: f"{r[k]['wall_s']:.3f} s (first in a process {r[k]['cold_s']:.2f} s) / {r[k]['peak_rss_mb']} MB"

    def page_right(r: dict) -> str:
        if "big_page_right" not in r:
            return "not checked"
        b = r["big_page_right"]
        return ("yes" if b["right"] else "**no**") + f": n {b['n_page']:,}, d50 {b['d50_page']} nm"

    return [
        f"## Years of a facility: one new image as the archive grows (bench/archive_bench.py){_from(runs, 'archive')}",
        "", "Stores built by bulk SQL of the project's schema: 100 samples plus one holding 20 % of the images; "
        "a new image of 100 particles stored as the worker stores it, then its pages drawn as the report "
        "thread draws them (page, CSV append, index); medians of 3, each in a fresh process (wall / peak RSS "
        "of that process).", "",
        "| | " + " | ".join(f"{int(n):,} images x {data[n]['particles_per_image']} particles" for n in sizes) + " |",
        "| --- |" + " --- |" * len(sizes),
        "| new image in an ordinary sample: stored | " + cells(lambda r: f"{r['new_ordinary']['stored_s']:.3f} s") + " |",
        "| the same, stored + its page + index | " + cells(new("new_ordinary")) + " |",
        "| new image in the big sample: stored + its page + index | " + cells(new("new_big")) + " |",
        "| big sample's page and index say the n and d50 of all its particles | " + cells(page_right) + " |",
        "| big sample's page / its CSV | " + cells(lambda r: f"{r['big_page_mb']} MB / {r['big_csv_mb']} MB") + " |",
        "| index.html | " + cells(lambda r: f"{r['index_kb']} kB") + " |",
        "| `psdwatch report` (all pages; first time, CSVs written whole) | "
        + cells(lambda r: f"{r['report_all']['wall_s']:.1f} s ({r['report_first_s']:.0f} s)") + " |",
        "| `status --json` (a fresh process) | " + cells(lambda r: f"{r['status_json_s']:.2f} s") + " |",
        "| deleted-file check: one slice (report thread) / whole pass, nothing changed | "
        + cells(lambda r: f"{r['missing_slice']['wall_s']:.2f} s / {r['missing_pass']['wall_s']:.2f} s") + " |",
        "| store build (bulk SQL) / database size | " + cells(lambda r: f"{r['build_s']:.0f} s / {r['db_mb']} MB") + " |",
        ""]


def _table(results: dict, skip: tuple = ()) -> list[str]:
    lines = ["| figure | value |", "| --- | --- |"]
    for key, value in results.items():
        if key in skip:
            continue
        shown = json.dumps(value) if isinstance(value, (dict, list)) else (
            f"{value:.4g}" if isinstance(value, float) else str(value))
        lines.append(f"| {key} | {shown} |")
    return lines


if __name__ == "__main__":
    write_benchmarks()
