"""An int8 copy of the U-Net for ONNX Runtime, built once per model, used only where it keeps the masks.

Why this way (measured on starter-v2, issue 14): static QDQ quantisation with
per-channel weights, the first convolution (raw intensities) and the
segmentation head (the logits the threshold cuts) left in fp32, and activation
ranges from the 99.999th percentile: with MinMax ranges a few saturated cores
stretch the scale and the masks of real patches drifted to IoU 0.965 against
fp32; with the percentile every one of 9 held-out real patches stayed at 0.98
or better.

The ranges must come from real images: calibrated on synthetic tiles alone, real
patches fell to IoU 0.93. So training (pipeline/train/loop.py) stores the activation
ranges of its own annotated images beside the model (`<name>.int8-ranges`:
numbers, not images), and the int8 graph is built from them wherever the model
runs; a model without them is calibrated on synthetic tiles, and the guard decides.
The accuracy guard uses synthetic tiles rendered here from fixed seeds (the
product ships no images), over dark, textured and bright supports and particles
of 6-24 px. A graph is accepted only if every guard tile's mask agrees with fp32
at IoU >= MIN_IOU; the verdict is stored beside the graph, and a rejected graph
is never used.

The graph depends on the CPU's int8 kernels. x86 CPUs without VNNI (AVX2, AVX-512
before Cascade Lake, AMD before Zen 4) multiply u8 x s8 pairs into int16 and
saturate; ONNX Runtime's documented cure is 7-bit weights (`reduce_range`). On an
AVX2-only EPYC (family 23) the 8-bit graph's masks fell to IoU 0.978 on a guard tile and it
was rejected; with 7-bit weights the worst tile was 0.982. So the graph is built
per kernel class (`cpu.int8_kernels`), named after it, and judged on the CPU that runs
it: a models folder shared by a Zen 4 and an AVX2 PC never hands the one the
other's verdict.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..io.files import write_atomic
from .cpu import int8_kernels
from .onnx import fp32_graph, session_runner

if TYPE_CHECKING:
    import torch

log = logging.getLogger("psdwatch")

MIN_IOU = 0.98
CALIBRATION = (("dark", 8), ("textured", 14), ("bright", 30), ("textured", 22), ("dark", 16), ("bright", 10))
GUARD = (("dark", 10), ("textured", 12), ("textured", 20), ("dark", 24), ("bright", 16), ("dark", 6))
PERCENTILE = 99.999


def graph_path(fp32: Path, kernels: str | None = None) -> Path:
    """Where the int8 graph of the fp32 graph `fp32` for a CPU kernel class lives (its
    verdict beside it, verdict_path)."""
    return fp32.with_name(f"{fp32.stem}.{kernels or int8_kernels()}.int8.onnx")


def tiles(specs: tuple, first_seed: int, edge: int = 512, input_mode: str = "plain") -> list[np.ndarray]:
    """Normalised synthetic tiles, one per (support, particle diameter in px)."""
    from .model_input import normalise
    from ..synth import SynthSpec, synth_image

    out = []
    for i, (background, d) in enumerate(specs):
        image, _, _ = synth_image(SynthSpec(size=edge, bits=16, style="band", seed=first_seed + i,
                                            background=background, d_median_px=d))
        out.append(normalise(image[:edge, :edge].astype(np.float32), mode=input_mode))
    return out


def guard(fp32: Path, int8: Path, threshold: float, input_mode: str = "plain") -> dict:
    """IoU of the int8 graph's masks against fp32's on the guard tiles, and the verdict."""
    from ..metrics import confusion, scores

    cut = math.log(threshold / (1 - threshold))  # the threshold on the logits
    ref, quant, ious = session_runner(fp32), session_runner(int8), []
    for tile in tiles(GUARD, 9100, input_mode=input_mode):
        x = tile[None, None]
        ious.append(scores(confusion(quant(x)[0, 0] > cut, ref(x)[0, 0] > cut))["iou"])
    return {"ious": [round(v, 4) for v in ious], "iou_min": round(min(ious), 4), "min_iou_required": MIN_IOU,
            "accepted": min(ious) >= MIN_IOU}


def ranges_path(models_dir: Path, name: str) -> Path:
    """Where a model's activation ranges for int8 live: beside its weights (JSON inside,
    but not named *.json: that is a model card)."""
    return Path(models_dir) / f"{name}.int8-ranges"


def save_ranges(fp32: Path, images: list[np.ndarray], out: Path, edge: int = 512) -> Path:
    """The activation ranges of the network on `images` (normalised, at most `edge`
    px cut from each), written to `out` for build()."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = _preprocessed(fp32, Path(tmp))
        _quantise(pre, Path(tmp) / "q.onnx", [im[:edge, :edge] for im in images], Path(tmp) / "ranges.json")
        write_atomic(out, (Path(tmp) / "ranges.json").read_bytes())
    return out


def build(fp32: Path, out: Path, threshold: float, ranges: Path | None = None,
          input_mode: str = "plain", seven_bit_weights: bool = False) -> dict:
    """Quantise the fp32 graph to `out` (with the model's stored ranges when it has
    them; weights in 7 bits where the CPU's kernels saturate), judge it on this CPU,
    and store the verdict beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = _preprocessed(fp32, Path(tmp))
        if ranges is not None and ranges.is_file():
            cache, source = Path(tmp) / "ranges.json", f"the model's stored ranges ({ranges.name})"
            cache.write_bytes(ranges.read_bytes())
            graph = _quantise(pre, Path(tmp) / "q.onnx", None, cache, seven_bit_weights)
        else:
            graph, source = (_quantise(pre, Path(tmp) / "q.onnx", tiles(CALIBRATION, 4242, input_mode=input_mode),
                                       None, seven_bit_weights), "synthetic tiles")
        write_atomic(out, graph.read_bytes())
    judged = {**guard(fp32, out, threshold, input_mode), "calibration": f"{source}, percentile {PERCENTILE}, "
              "first and last Conv in fp32", "weights": "7-bit (reduce_range)" if seven_bit_weights else "8-bit"}
    write_atomic(verdict_path(out), json.dumps(judged, indent=1))
    return judged


def _preprocessed(fp32: Path, tmp: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = tmp / "pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    return pre


def _quantise(pre: Path, out: Path, calibration: list[np.ndarray] | None, cache: Path | None = None,
              seven_bit_weights: bool = False) -> Path:
    """QDQ int8 graph of `pre`: ranges from `calibration` tiles (saved to `cache` if
    given) or, without tiles, read from `cache`."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self, images: list[np.ndarray]) -> None:
            self.feed = iter([{"image": np.ascontiguousarray(t[None, None], np.float32)} for t in images])

        def get_next(self) -> dict | None:
            return next(self.feed, None)

    convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
    quantize_static(str(pre), str(out), Reader(calibration) if calibration is not None else None,
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, reduce_range=seven_bit_weights,
                    calibrate_method=CalibrationMethod.Percentile,
                    nodes_to_exclude=[convs[0], convs[-1]], extra_options={"CalibPercentile": PERCENTILE},
                    calibration_cache_path=str(cache) if cache is not None else None)
    return out


def verdict_path(graph: Path) -> Path:
    return graph.with_suffix(".json")


def verdict(graph: Path) -> dict | None:
    """The stored guard verdict of an int8 graph, None when it was never judged."""
    try:
        return json.loads(verdict_path(graph).read_text())
    except (OSError, ValueError):
        return None


def graph(network: Callable[[], torch.nn.Module], sha256: str, models_dir: Path, threshold: float,
               ranges: Path | None = None, input_mode: str = "plain") -> Path | None:
    """The model's int8 graph for this CPU's kernels if its accuracy guard accepted it
    (built and judged once per kernel class, from the model's stored activation
    `ranges` when it has them); else None."""
    fp32 = fp32_graph(network, sha256, models_dir)
    kernels = int8_kernels()
    path = graph_path(fp32, kernels)
    judged = verdict(path) if path.is_file() else None
    if judged is None:
        log.info("building and checking the int8 graph once for %s int8 kernels: %s", kernels, path)
        judged = build(fp32, path, threshold, ranges, input_mode, seven_bit_weights=kernels == "avx2")
        log.info("int8 graph %s: mask IoU against fp32 at least %.3f on the guard tiles (%s)", path.name,
                 judged["iou_min"], "accepted" if judged["accepted"] else f"rejected, below {judged['min_iou_required']}")
    return path if judged["accepted"] else None
