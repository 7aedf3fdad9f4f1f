"""`make bench`: speed and accuracy figures, written to bench/results.json and BENCHMARKS.md.

Each figure is measured in this one process on this machine, and the machine is
written beside it, because figures from different machines do not compare.

    python bench/run.py [--synth N] [--size 2048] [--quick]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks_page import bench_run, write_benchmarks  # noqa: E402 - bench/benchmarks_page.py
from psdwatch.daemon.config import load_config, settings_from_config  # noqa: E402
from psdwatch.daemon.models import live as live_model  # noqa: E402
from psdwatch.daemon.models.live import load_live_model, prepare_named  # noqa: E402
from psdwatch.pipeline.segment import classical
from psdwatch.pipeline import runtime
from psdwatch.pipeline.measure import particles as measure, psd
from psdwatch.pipeline import metrics
from psdwatch.pipeline.runtime import models  # noqa: E402
from psdwatch.pipeline.analyse import analyse_image  # noqa: E402
from psdwatch.pipeline.synth import STYLES, SynthSpec, synth_image, write_example  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": runtime.cpu_has_native_bf16()}


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


def naive_forward(net: torch.nn.Module, image: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """The unoptimised path: eager fp32, contiguous (not channels_last), autograd on."""
    net_cl = net.to(memory_format=torch.contiguous_format)
    stride = tile - overlap
    h, w = image.shape
    acc, weight = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    x = runtime.normalise(image)
    for y in list(range(0, h - tile, stride)) + [h - tile]:
        for x0 in list(range(0, w - tile, stride)) + [w - tile]:
            out = torch.sigmoid(net_cl(torch.from_numpy(x[y:y + tile, x0:x0 + tile].copy())[None, None]))
            acc[y:y + tile, x0:x0 + tile] += out[0, 0].detach().numpy()
            weight[y:y + tile, x0:x0 + tile] += 1
    return acc / weight


def unet_speed(settings, runs: int = 3) -> dict:
    """The U-Net on one 2048² frame, each runtime against the naive path, runs
    interleaved in this one process so a busy moment hits all of them alike.
    Timing does not depend on the weights, so a fresh network stands in when none is live."""
    config = load_config()
    models_dir = config["models"]["dir"]
    name = live_model.live_model_name(models_dir)
    load = (lambda: models.load_model(models_dir, name)) if name else (
        lambda: models.Model("random", "", models.build_unet(), {}))
    torch_model = runtime.prepare_model(load(), runtime="torch")
    ort_model = runtime.prepare_model(load(), runtime="onnxruntime", models_dir=models_dir)
    image, _, _ = synth_image(SynthSpec(size=2048, bits=16, style="band", seed=77))
    image = image.astype(np.float32)
    precision = runtime.choose_precision(settings.precision)
    paths = {
        "naive": lambda: naive_forward(load().net, image, settings.tile, settings.overlap),
        "torch": lambda: runtime.predict_probability(torch_model, image, tile=settings.tile,
                                                     overlap=settings.overlap, precision=precision),
        "onnxruntime": lambda: runtime.predict_probability(ort_model, image, tile=settings.tile,
                                                           overlap=settings.overlap),
    }
    times: dict[str, list[float]] = {k: [] for k in paths}
    probs: dict[str, np.ndarray] = {}
    for _ in range(runs):
        for key, run in paths.items():
            t = time.perf_counter()
            probs[key] = run()
            times[key].append(time.perf_counter() - t)
    median = {k: statistics.median(v) for k, v in times.items()}
    best = min(("torch", "onnxruntime"), key=median.get)
    out = {"unet_model": name or "random", "unet_precision": precision, "unet_runtime_fastest": best,
           "naive_s_2048": median["naive"], "unet_torch_s_2048": median["torch"],
           "unet_onnxruntime_s_2048": median["onnxruntime"], "unet_segment_s_2048": median[best],
           "speedup_vs_naive": median["naive"] / median[best],
           "torch_optimised_vs_naive": median["naive"] / median["torch"],
           "onnxruntime_vs_torch": median["torch"] / median["onnxruntime"]}
    for key in ("torch", "onnxruntime"):
        out[f"{key}_vs_naive_mask_iou"] = metrics.scores(metrics.confusion(probs[key] > 0.5,
                                                                           probs["naive"] > 0.5))["iou"]
        out[f"{key}_vs_naive_max_prob_diff"] = float(np.abs(probs[key] - probs["naive"]).max())
    d50 = {k: psd.summarise([p["ecd_px"] for p in measure.measure_particles(
        measure.label_particles(probs[k] > 0.5), image, None)], "px", 0)["d50"] for k in probs}
    out["optimised_vs_naive_d50_rel_diff"] = d50[best] / d50["naive"] - 1 if d50["naive"] else None
    return out


MAGNIFICATIONS_PX = (8, 30, 100)


def int8_on_real_patches(config: dict, name: str) -> dict:
    """The int8 graph against fp32 on the real patches the model was tested on (never
    used to calibrate it): per-patch mask IoU at the model's threshold, and speed."""
    from psdwatch.pipeline.train.data import find_annotations, load_example

    seg = config["segment"]
    nets = {p: prepare_named(config["models"]["dir"], name, {**seg, "precision": p, "runtime": "onnxruntime"})
            for p in ("fp32", "int8")}
    if nets["int8"].runtime != "onnxruntime-int8":
        return {"int8": "rejected by its accuracy guard"}
    test = set(json.loads((Path(config["models"]["dir"]) / "test_set.json").read_text())["sha256"])
    patches = [e for e in (load_example(i, m) for i, m in find_annotations(DATA / "pt-alumina-haadf"))
               if e.sha256 in test]
    ious, seconds = [], {p: 0.0 for p in nets}
    for e in patches:
        masks = {}
        for p, m in nets.items():
            t = time.perf_counter()
            masks[p] = runtime.predict_probability(m, e.data) > m.threshold
            seconds[p] += time.perf_counter() - t
        ious.append(metrics.scores(metrics.confusion(masks["int8"], masks["fp32"]))["iou"])
    return {"patches": len(patches), "iou_min": min(ious), "iou_mean": statistics.mean(ious),
            "int8_speedup_vs_fp32": seconds["fp32"] / seconds["int8"]}


def magnifications(settings, runs: int = 1) -> dict:
    """End to end with the U-Net on 2048² frames at three magnifications (particles of
    about 8, 30 and 100 px), as `auto` runs them (size-aware, tiles sized to the frame,
    the fastest runtime), against the naive baseline (eager fp32, 512/64 tiles, full
    resolution) and against the full-resolution fp32 reference of the same runtime:
    time, mask IoU and d50 difference. The paths are interleaved per frame."""
    config = load_config()
    live = load_live_model(config, "unet")
    if live is None:
        return {}
    # The reference runs in fp32 whatever `auto` chose (int8 is judged against it).
    fp32 = prepare_named(config["models"]["dir"], live.name,
                         {**config["segment"], "precision": "fp32", "runtime": "onnxruntime"})
    out: dict = {"magnification_model": live.name, "auto_path": live.runtime,
                 "int8_real_patches": int8_on_real_patches(config, live.name)}
    fast = replace(settings, engine="unet", bootstrap=0)
    full = replace(fast, size_aware=False)
    with tempfile.TemporaryDirectory() as tmp:
        for i, d in enumerate(MAGNIFICATIONS_PX):
            image, mask, truth = synth_image(SynthSpec(size=2048, bits=(8, 16)[i % 2], style=STYLES[i % 4],
                                                       seed=990_000 + d, background=("dark", "textured")[i % 2],
                                                       d_median_px=d, coverage=0.06))
            path = write_example(Path(tmp), f"mag_{d}", image, mask, truth)
            times, naive_times = [], []
            for _ in range(runs):
                t = time.perf_counter()
                a = analyse_image(path, fast, live)
                times.append(time.perf_counter() - t)
                t = time.perf_counter()
                naive_prob = naive_forward(live.net, image.astype(np.float32), 512, 64)
                naive_times.append(time.perf_counter() - t)
            reference = analyse_image(path, replace(full, precision="fp32"), fp32)
            same_scale = analyse_image(path, replace(fast, precision="fp32"), fp32)  # what int8 alone changes
            naive_mask = measure.clean_mask(naive_prob > live.threshold, settings.min_area_px)
            d50 = lambda an: psd.summarise([p["ecd_px"] for p in an.particles], "px", 0)["d50"]  # noqa: E731
            e2e = statistics.median(times)
            naive_e2e = e2e - a.timings["segment_s"] - a.timings.get("size_s", 0) + statistics.median(naive_times)
            true_iou = lambda m: metrics.scores(metrics.confusion(m, mask))["iou"]  # noqa: E731
            out[f"d{d}"] = {
                "end_to_end_s": e2e, "segment_scale": a.segment_scale, "steps_s": a.timings,
                "naive_end_to_end_s": naive_e2e, "speedup_vs_naive": naive_e2e / e2e,
                "reference_s": reference.timings["segment_s"],
                "mask_iou_vs_reference": metrics.scores(metrics.confusion(a.mask, reference.mask))["iou"],
                "d50_diff_vs_reference": d50(a) / d50(reference) - 1 if d50(reference) else None,
                "mask_iou_vs_fp32_same_scale": metrics.scores(metrics.confusion(a.mask, same_scale.mask))["iou"],
                "d50_diff_vs_fp32_same_scale": d50(a) / d50(same_scale) - 1 if d50(same_scale) else None,
                "iou_vs_truth": true_iou(a.mask), "reference_iou_vs_truth": true_iou(reference.mask),
                "naive_iou_vs_truth": true_iou(naive_mask)}
            print(f"  {d:3d} px: {e2e:.2f} s (scale {a.segment_scale:.2f}), naive {naive_e2e:.2f} s, "
                  f"IoU vs reference {out[f'd{d}']['mask_iou_vs_reference']:.3f}", flush=True)
    e2e = [out[f"d{d}"]["end_to_end_s"] for d in MAGNIFICATIONS_PX]
    naive = [out[f"d{d}"]["naive_end_to_end_s"] for d in MAGNIFICATIONS_PX]
    out.update({"unet_end_to_end_median_s_2048": statistics.median(e2e),
                "naive_end_to_end_median_s_2048": statistics.median(naive),
                "speedup_median_vs_naive": statistics.median(naive) / statistics.median(e2e),
                "min_mask_iou_vs_reference": min(out[f"d{d}"]["mask_iou_vs_reference"] for d in MAGNIFICATIONS_PX)})
    return {"magnifications": out}


def process_peak_rss(size: int = 2048) -> dict:
    """Peak RSS of one `psdwatch process` of a 2048² frame, in its own process
    (the benchmark's own peak mixes every figure above)."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        image, _, _ = synth_image(SynthSpec(size=size, bits=16, style="band", seed=78))
        path = Path(tmp) / "frame.tif"
        tifffile.imwrite(path, image)
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a
        # child of this (large) benchmark process would report the parent's peak.
        code = ("import sys; from pathlib import Path; from psdwatch.daemon.cli import main; "
                "rc = main(['process', sys.argv[1], '--json']); "
                "print([l.split()[1] for l in Path('/proc/self/status').read_text().splitlines() "
                "if l.startswith('VmHWM:')][0], file=sys.stderr)")
        done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True,
                              text=True, check=True)
        record = json.loads(done.stdout)
    return {f"process_peak_rss_mb_{size}": int(done.stderr.strip().splitlines()[-1]) / 1024,
            "process_engine": record.get("model")}


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def backlog(share: Path, count: int, size: int, bases: int = 12) -> None:
    """`count` distinct frames in three samples. A dozen synthetic frames are
    rendered and each copy differs by one pixel, so every file is new content
    (no duplicate shortcut) at the cost of a dozen renders, not a thousand."""
    frames = [synth_image(SynthSpec(size=size, bits=16, style=STYLES[i % len(STYLES)], seed=9000 + i))[0]
              for i in range(min(bases, count))]
    for i in range(count):
        image = frames[i % len(frames)].copy()
        image[0, 0] = i % 65536
        image[0, 1] = i // 65536
        folder = share / f"sample {i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / f"frame_{i:04d}.tif", image)


def enqueue_all(db, share: Path, files: list[Path]) -> None:
    """Queue the backlog's files as the watcher would, each under its sample folder."""
    from psdwatch.daemon.store import core as store

    for path in files:
        rel = path.relative_to(share).as_posix()
        store.enqueue(db, rel, rel.split("/")[0], path.stat().st_size, path.stat().st_mtime_ns)


def daemon_drain(count: int, size: int) -> dict:
    """A lab drops a backlog: `count` frames already on the share when the real
    `psdwatch run` process starts. Throughput, and its memory sampled as it
    drains: flat memory means the RSS after the last images is no higher than
    after the first tenth."""
    import subprocess

    from psdwatch.daemon.store import core as store

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backlog(tmp / "share", count, size)
        config = tmp / "bench.toml"
        config.write_text('[watch]\nroot = "share"\npolling = false\nsettle_seconds = 0.5\n'
                          '[store]\ndatabase = "state/db.sqlite"\n[reports]\ndir = "state/reports"\n'
                          f'[models]\ndir = "{load_config()["models"]["dir"].as_posix()}"\n'
                          '[train]\nenabled = false\n')
        started = time.perf_counter()
        daemon = subprocess.Popen([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(config)],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db_path, samples, finished = tmp / "state" / "db.sqlite", [], 0
        try:
            while finished < count:
                time.sleep(1.0)
                if daemon.poll() is not None:
                    raise RuntimeError(f"psdwatch run exited with {daemon.returncode} during the drain")
                if db_path.exists():
                    db = store.open_store(db_path)
                    counts = store.counts(db)
                    db.close()
                    finished = sum(counts[k] for k in ("done", "quarantined", "duplicate"))
                    samples.append((finished, _rss_mb(daemon.pid)))
                    if len(samples) % 30 == 0:
                        print(f"  drained {finished}/{count}, RSS {samples[-1][1]:.0f} MB", flush=True)
            elapsed = time.perf_counter() - started
            peak = _rss_mb(daemon.pid, "VmHWM")
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    early = [rss for done, rss in samples if done <= count * 0.1 and done > 0] or [samples[0][1]]
    late = [rss for done, rss in samples if done >= count * 0.9]
    return {f"drain_{count}_images_size": size, f"drain_{count}_images_per_min": count / elapsed * 60,
            f"drain_{count}_peak_rss_mb": peak, f"drain_{count}_rss_first_tenth_mb": max(early),
            f"drain_{count}_rss_last_tenth_mb": max(late),
            f"drain_{count}_rss_growth_mb": max(late) - max(early), "drain_model": counts["model"]}


def cluster_throughput(count: int, size: int, engine: str, workers: int = 2) -> dict:
    """Frames per minute analysed and stored (with their thumbnails, as the service
    does) by worker.run_jobs: in this process, then through a Dask LocalCluster of
    `workers` worker processes of one thread each ([compute] scheduler = "local").
    The same `count` distinct frames each time; the cluster's start-up (worker
    processes, imports, the model loaded once per worker) is timed apart."""
    from psdwatch.daemon.service import compute
    from psdwatch.daemon.store import core as store
    from psdwatch.daemon.config import defaults
    from psdwatch.daemon.service.loop import write_thumbnail
    from psdwatch.daemon.service.worker import run_jobs

    config = defaults()
    config["segment"]["engine"] = engine
    settings = settings_from_config(config)
    model = load_live_model(config, engine)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backlog(tmp / "share", count, size, bases=min(count, 6))
        files = sorted((tmp / "share").rglob("*.tif"))
        for label, scheduler in (("in_process", ""), (f"local_{workers}_workers", "local")):
            db = store.open_store(tmp / f"{label}.sqlite")
            enqueue_all(db, tmp / "share", files)
            config["compute"].update(scheduler=scheduler, workers=workers)
            started = time.perf_counter()
            cluster = compute.start(config)
            if scheduler:
                assert cluster is not None, "the LocalCluster did not start"
                warm = [cluster.submit(files[0], settings, model) for _ in range(workers)]  # the model on each worker
                cluster.ready(warm, 600)
                while not all(f.done() for f in warm):
                    time.sleep(0.1)
                out[f"cluster_{engine}_startup_s"] = time.perf_counter() - started

            def claims():
                while (job := store.claim_next(db)) is not None:
                    yield job

            t = time.perf_counter()
            statuses = [o.status for _, o in run_jobs(db, claims(), tmp / "share", settings, lambda: model, cluster,
                                                      lambda a, sha: write_thumbnail(a, sha, tmp / label))]
            elapsed = time.perf_counter() - t
            if cluster is not None:
                cluster.close()
            assert statuses.count("done") == count, statuses
            out[f"cluster_{engine}_{label}_frames_per_min"] = count / elapsed * 60
            db.close()
            print(f"  {engine} {label}: {count} frames of {size}² in {elapsed:.1f} s", flush=True)
    out[f"cluster_{engine}_speedup"] = (out[f"cluster_{engine}_local_{workers}_workers_frames_per_min"]
                                        / out[f"cluster_{engine}_in_process_frames_per_min"])
    out[f"cluster_{engine}_frames"] = f"{count} x {size}²"
    return out


def read_ahead_throughput(count: int, size: int) -> dict:
    """Frames per minute through the service's own loop (service.drain_once: claim,
    hash, analyse with the live model, store, thumbnails and report pages), with
    the next image read and its bar found in a thread beside the network
    ([compute] read_ahead = true) and without; the same frames, one run each."""
    from psdwatch.daemon.store import core as store
    from psdwatch.daemon.config import defaults
    from psdwatch.daemon.service.read_ahead import ReadAhead
    from psdwatch.daemon.service.loop import LiveModel, drain_once

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backlog(tmp / "share", count, size, bases=min(count, 6))
        files = sorted((tmp / "share").rglob("*.tif"))
        for label, ahead in (("in_line", False), ("read_ahead", True)):
            config = defaults()
            config["watch"]["root"], config["reports"]["dir"] = tmp / "share", tmp / label / "reports"
            config["annotations"]["proposals_dir"] = tmp / label / "proposals"
            config["reports"]["dir"].mkdir(parents=True)
            settings = settings_from_config(config)
            live = LiveModel(config, settings.engine)
            db = store.open_store(tmp / f"{label}.sqlite")
            enqueue_all(db, tmp / "share", files)
            reader = ReadAhead(settings) if ahead else None
            t, statuses = time.perf_counter(), []
            while (outcome := drain_once(db, config, settings, live, reader)) is not None:
                statuses.append(outcome.status)
            elapsed = time.perf_counter() - t
            if reader is not None:
                reader.close()
            assert statuses.count("done") == count, statuses
            out[f"read_ahead_{label}_frames_per_min"] = count / elapsed * 60
            out["read_ahead_model"] = live.refresh().name if live.refresh() else "classical"
            db.close()
            print(f"  {label}: {count} frames of {size}² in {elapsed:.1f} s", flush=True)
    out["read_ahead_speedup"] = out["read_ahead_read_ahead_frames_per_min"] / out["read_ahead_in_line_frames_per_min"]
    out["read_ahead_frames"] = f"{count} x {size}²"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", type=int, default=30, help="synthetic images to score")
    parser.add_argument("--synth-unet", type=int, default=10, help="of them, also through the U-Net")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3, help="repeats of each U-Net timing")
    parser.add_argument("--drain", type=int, default=200, help="queued images the service drains (--drain 1000)")
    parser.add_argument("--drain-size", type=int, default=1024, help="edge of the drained frames")
    parser.add_argument("--cluster-frames", type=int, default=10, help="frames of the cluster comparison (classical)")
    parser.add_argument("--cluster-unet-frames", type=int, default=6,
                        help="frames of the cluster comparison with the U-Net (0: skip)")
    parser.add_argument("--read-ahead-frames", type=int, default=8, help="2048² frames of the read-ahead comparison")
    parser.add_argument("--only", choices=("accuracy", "unet", "magnifications", "daemon", "cluster", "read_ahead"),
                        help="run one part alone")
    args = parser.parse_args()
    config = load_config()
    settings = settings_from_config(config)
    results_path = REPO / "bench" / "results.json"
    results = json.loads(results_path.read_text()) if args.only and results_path.is_file() else {}
    results.update({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "run": bench_run()})
    if args.only in (None, "accuracy"):
        print("classical engine on the real patches ...", flush=True)
        results.update(classical_on_real_patches())
        print(f"{args.synth} synthetic {args.size}² images ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            results.update(synthetic_accuracy(Path(tmp), args.synth, args.size, settings, None, "classical_"))
        live = load_live_model(config, settings.engine)
        if live is not None:
            print(f"{args.synth_unet} synthetic {args.size}² images with the U-Net {live.name} ...", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                results.update(synthetic_accuracy(Path(tmp), args.synth_unet, args.size, settings, live, "unet_"))
        # What `auto` runs: the live U-Net when there is one.
        engine = "unet_" if live is not None else "classical_"
        results["end_to_end_engine"] = engine.rstrip("_")
        results["end_to_end_s_%d" % args.size] = results[f"{engine}end_to_end_s_{args.size}"]
    if args.only in (None, "unet"):
        print("U-Net on 2048², optimised and naive ...", flush=True)
        results.update(unet_speed(settings, args.runs))
        results.update(process_peak_rss())
    if args.only in (None, "magnifications"):
        print("U-Net end to end at three magnifications ...", flush=True)
        results.update(magnifications(settings))
        results.update(process_peak_rss())
        mag = results.get("magnifications", {})
        if mag:  # DESIGN's headline figures: what `auto` runs, median of the three magnifications
            results.update({"end_to_end_engine": "unet", "end_to_end_s_2048": mag["unet_end_to_end_median_s_2048"],
                            "naive_s_2048": mag["naive_end_to_end_median_s_2048"],
                            "speedup_vs_naive": mag["speedup_median_vs_naive"],
                            "mask_iou_vs_reference_min": mag["min_mask_iou_vs_reference"]})
    if args.only in (None, "daemon") and args.drain:
        print(f"{args.drain} queued images of {args.drain_size}² drained by psdwatch run ...", flush=True)
        results.update(daemon_drain(args.drain, args.drain_size))
    if args.only in (None, "cluster"):
        print("frames/min in process and through a LocalCluster of 2 workers ...", flush=True)
        results.update(cluster_throughput(args.cluster_frames, 2048, "classical"))
        if args.cluster_unet_frames and load_live_model(config, "auto") is not None:
            results.update(cluster_throughput(args.cluster_unet_frames, 1024, "unet"))
    if args.only in (None, "read_ahead"):
        print("frames/min through the service loop, with and without the read-ahead ...", flush=True)
        results.update(read_ahead_throughput(args.read_ahead_frames, 2048))
    results["bench_process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if "process_peak_rss_mb_2048" in results:
        # The figure a lab PC must hold: one image through `psdwatch process`, in its own process.
        results["peak_rss_mb"] = results["process_peak_rss_mb_2048"]
    if results.get("end_to_end_engine") == "unet" and "naive_s_2048" in results:
        # The same image with the naive network in place of the optimised one (derived).
        results["end_to_end_naive_s_2048"] = (results["end_to_end_s_2048"]
                                              - results["unet_step_s_median"]["segment_s"]
                                              + results["naive_s_2048"])
        results["end_to_end_speedup_vs_naive"] = results["end_to_end_naive_s_2048"] / results["end_to_end_s_2048"]
    results_path.write_text(json.dumps(results, indent=2))
    write_benchmarks()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
