"""The U-Net's speed in `make bench`: optimised against naive, end to end at three
magnifications (size-aware segmentation), int8 against fp32 on real patches, and the
peak memory of one `psdwatch process`.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from psdwatch.daemon.config import Config, load_config, runtime_options  # noqa: E402
from psdwatch.daemon.models import live as live_model  # noqa: E402
from psdwatch.daemon.models.live import load_live_model, prepare_named  # noqa: E402
from psdwatch.pipeline import metrics, runtime  # noqa: E402
from psdwatch.pipeline.analyse import analyse_image  # noqa: E402
from psdwatch.pipeline.measure import particles as measure, psd  # noqa: E402
from psdwatch.pipeline.runtime import models  # noqa: E402
from psdwatch.pipeline.synth import STYLES, SynthSpec, synth_image, write_example  # noqa: E402

DATA = REPO.parent / "shared" / "data"

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
    models_dir = config.models.dir
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


def int8_on_real_patches(config: Config, name: str) -> dict:
    """The int8 graph against fp32 on the real patches the model was tested on (never
    used to calibrate it): per-patch mask IoU at the model's threshold, and speed."""
    from psdwatch.pipeline.train.data import find_annotations, load_example

    options = runtime_options(config)
    nets = {p: prepare_named(config.models.dir, name, replace(options, precision=p, runtime="onnxruntime"))
            for p in ("fp32", "int8")}
    if nets["int8"].runtime != "onnxruntime-int8":
        return {"int8": "rejected by its accuracy guard"}
    test = set(json.loads((Path(config.models.dir) / "test_set.json").read_text())["sha256"])
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
    fp32 = prepare_named(config.models.dir, live.name,
                         replace(runtime_options(config), precision="fp32", runtime="onnxruntime"))
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


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")
