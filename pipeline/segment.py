"""Binary image: which pixels are metal particle.

Two engines. "unet" is the study's method: the U-Net run over the image in
overlapping tiles, blended, so any image size works with bounded memory.
"classical" needs no model (see pipeline.classical) and is what a fresh install
without a model falls back to.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import time
from pathlib import Path

from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import classical, size
from .models import INPUT_MODES, Model

if TYPE_CHECKING:  # imported where the network runs; the classical engine never loads torch
    import torch

ENGINES = ("auto", "unet", "classical")
log = logging.getLogger("psdwatch")


FLATTEN_RADIUS_PX = 48


def flatten_background(image: np.ndarray, radius: int = FLATTEN_RADIUS_PX) -> np.ndarray:
    """The frame minus its slowly varying background (a white top-hat: a grey opening
    with a disk wider than the particles the network sees, smoothed).

    On thick oxide supports a HAADF particle is a faint bump on a bright, uneven
    background; scaled as a whole, such a frame puts the particles in the middle of
    the grey range, where the network learnt support, and starter-v2 found 1 in 10
    of them. The support's signal adds to the particle's (HAADF intensity grows with
    thickness), so subtracting it leaves particles on a flat floor, as on thin
    carbon. The opening runs on a copy shrunk to a twelfth of the radius (cheap;
    the background is smooth anyway). Particles wider than the disk lose their
    middle: size-aware segmentation shrinks frames of large particles first."""
    img = np.asarray(image, np.float32)
    h, w = img.shape
    step = max(1, radius // 12)
    small = cv2.resize(img, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
    r = max(1, round(radius / step))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, disk, borderType=cv2.BORDER_REFLECT)
    background = cv2.GaussianBlur(background, (0, 0), r / 4)
    return img - cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)


def normalise(image: np.ndarray, exclude: np.ndarray | None = None, mode: str = "plain") -> np.ndarray:
    """Map raw detector values to a range the network was trained on (`mode`
    "flattened": after flatten_background, for models trained that way).

    Robust percentiles rather than min/max, because hot pixels and the burned-in
    scale bar would otherwise squash the support into a few grey levels; the
    upper percentile is a high one because particles are only a few percent of
    the pixels and must stay above 1, not be clipped into the support.
    """
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown model input {mode!r}; this version knows {', '.join(INPUT_MODES)}")
    if mode == "flattened":
        image = flatten_background(image)
    values = image[~exclude] if exclude is not None and exclude.any() else image
    if values.size == 0:
        values = image
    lo, hi = np.percentile(values, (1.0, 99.5))
    scale = float(hi - lo) if hi > lo else 1.0
    out = (image.astype(np.float32) - np.float32(lo)) / np.float32(scale)
    return np.clip(out, -1.0, 4.0, out=out)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16: without them bf16 is emulated and several times slower
    than fp32 (measured 6x on an AVX2 EPYC), so it must not be used blindly."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(setting: str) -> str:
    """The precision of a PyTorch forward pass ("int8" exists only as an ONNX Runtime graph:
    where PyTorch runs the network instead, it runs in fp32)."""
    if setting not in ("auto", "fp32", "bf16", "int8"):
        raise ValueError(f"[segment] precision must be auto, fp32, bf16 or int8, not {setting!r}")
    if setting == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32" if setting == "int8" else setting


def _nvidia_driver() -> bool:
    """The NVIDIA kernel driver is loaded (what CUDA needs before anything else)."""
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def choose_device(setting: str) -> str:
    """"auto" takes a CUDA GPU when torch sees one; "cuda" without one is an error,
    not a silent fall back to a CPU run twenty times slower."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ValueError(f"[segment] device must be auto, cpu or cuda, not {setting!r}")
    if setting == "cpu":
        return "cpu"
    if setting == "auto" and not _nvidia_driver():
        return "cpu"  # without the driver torch can see no GPU: not worth importing torch (1.6 s) to hear it
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if setting == "cuda":
        raise ValueError("[segment] device is 'cuda' but torch sees no CUDA GPU")
    return "cpu"


def _ceil(value: int, step: int) -> int:
    """`value` rounded up to a multiple of `step`."""
    return -(-value // step) * step


def plan_tiles(length: int, max_tile: int, overlap: int) -> tuple[int, list[int]]:
    """Tile edge and starts covering `length` with the fewest tiles of at most
    `max_tile`, each sized to the frame (a multiple of 32) so that neighbours
    overlap by at least `overlap` and no more than rounding needs: 2048 px in
    tiles of at most 512 with 64 overlap is 5 tiles of 480 (1.37x the pixels
    in 2-D), not 5 of 512 with a last one mostly repeated (1.56x)."""
    if length <= max_tile:
        return _ceil(length, 32), [0]
    n = _ceil(length - overlap, max_tile - overlap) // (max_tile - overlap)
    while (tile := _ceil(_ceil(length + (n - 1) * overlap, n) // n, 32)) > max_tile:
        n += 1
    starts = np.linspace(0, length - tile, n).round().astype(int).tolist()
    return tile, starts


def _ramp(length: int, overlap: int) -> np.ndarray:
    ramp = np.ones(length, np.float32)
    if 0 < overlap < length // 2:
        edge = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap] = edge
        ramp[-overlap:] = edge[::-1]
    return ramp


def predict_probability(model: Model, image: np.ndarray, exclude: np.ndarray | None = None,
                        tile: int = 512, overlap: int = 64, precision: str = "fp32",
                        batch: int | None = None) -> np.ndarray:
    """Per-pixel particle probability, with the same normalisation as training.

    Overlapping tiles are blended with weights that fade towards each tile's
    edge, where the network sees least context, so seams do not show in the mask.
    """
    if tile % 32 or not 0 <= overlap < tile // 2:
        raise ValueError("tile must be a multiple of 32 and overlap less than half of it")
    if batch is None:  # a GPU wants many tiles at once; on a CPU two measured best
        batch = 8 if model.runner is None and next(model.net.parameters()).is_cuda else 2
    x = normalise(image, exclude, model.input_mode)
    h, w = x.shape
    (th, ys), (tw, xs) = plan_tiles(h, tile, overlap), plan_tiles(w, tile, overlap)
    padded = np.pad(x, ((0, max(0, th - h)), (0, max(0, tw - w))), mode="reflect")
    H, W = padded.shape
    window = np.outer(_ramp(th, overlap), _ramp(tw, overlap))
    acc = np.zeros((H, W), np.float32)
    weight = np.zeros((H, W), np.float32)
    boxes = [(y, x0) for y in ys for x0 in xs]
    for i in range(0, len(boxes), batch):
        chunk = boxes[i:i + batch]
        stack = np.stack([padded[y:y + th, x0:x0 + tw] for y, x0 in chunk])[:, None]
        if model.runner is not None:
            logits = model.runner(stack)[:, 0]
            probs = 0.5 * (np.tanh(0.5 * logits) + 1.0)  # the sigmoid, without overflow
        else:
            import torch

            logits = run_network(model.net, torch.from_numpy(stack), precision)
            probs = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
        for (y, x0), p in zip(chunk, probs):
            acc[y:y + th, x0:x0 + tw] += p * window
            weight[y:y + th, x0:x0 + tw] += window
    return (acc / np.maximum(weight, 1e-6))[:h, :w]


def run_network(net: torch.nn.Module, batch: torch.Tensor, precision: str) -> torch.Tensor:
    """One forward pass in the chosen precision; channels_last measures faster on CPU.
    On a GPU the tiles run in fp16 autocast (bf16 where the GPU has it)."""
    import torch

    device = next(net.parameters()).device
    batch = batch.to(device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        if device.type == "cuda":
            half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=half):
                return net(batch)
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(batch)
        return net(batch)


def prepare_model(model: Model, threads: int = 0, runtime: str = "torch",
                  models_dir: Path | None = None, device: str = "cpu") -> Model:
    """Once per process: the device, the thread count, and the ONNX Runtime session
    when that runtime was chosen (onnx_runtime.choose_runtime, or "fastest": measured).
    Where ONNX Runtime runs a graph already cached for these weights, the PyTorch
    network is never built (models.Model.net is loaded on first use)."""
    models_dir = models_dir or Path(tempfile.gettempdir())
    if device == "cuda":
        return _torch_ready(model, threads, device)
    if runtime == "fastest":  # [segment] precision and runtime "auto" on a CPU: measured (pipeline/fastest.py)
        from . import fastest

        try:
            runtime = {"onnxruntime-fp32": "onnxruntime", "onnxruntime-int8": "onnxruntime-int8",
                       "torch-bf16": "torch"}[fastest.choose(model, models_dir, threads)]
        except Exception as error:  # a failed measurement must not stop the service
            log.warning("could not compare the network's paths (%s: %s); ONNX Runtime fp32 runs it",
                        type(error).__name__, error)
            runtime = "onnxruntime"
    if runtime in ("onnxruntime", "onnxruntime-int8"):
        from . import onnx_runtime
        from .int8 import ranges_path

        try:
            model.runner = onnx_runtime.runner(lambda: model.net, model.sha256, models_dir, threads,
                                               int8=runtime.endswith("int8"), threshold=model.threshold,
                                               ranges=ranges_path(models_dir, model.name),
                                               input_mode=model.input_mode)
            model.runtime = getattr(model.runner, "runtime", "onnxruntime")
            return model
        except Exception as error:  # an export or runtime failure must not stop the service
            log.warning("ONNX Runtime unavailable for %s (%s: %s); PyTorch runs it", model.name,
                        type(error).__name__, error)
    return _torch_ready(model, threads, device)


def _torch_ready(model: Model, threads: int, device: str) -> Model:
    """PyTorch runs the network: eval mode, channels_last weights (after any export,
    which needs contiguous ones), on the device."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    model.net.eval()
    model.net.to(device, memory_format=torch.channels_last)
    model.runtime = "torch"
    return model


def probabilities(image: np.ndarray, engine: str, model: Model | None = None,
                  exclude: np.ndarray | None = None, nm_per_px: float | None = None,
                  tile: int = 512, overlap: int = 64, precision: str = "fp32") -> np.ndarray:
    """Per-pixel particle probability at the image's own resolution (the classical
    engine's is 0 or 1), so that both engines can be resampled the same way."""
    if engine == "unet":
        if model is None:
            raise ValueError("engine 'unet' needs a model, and none is live")
        return predict_probability(model, image, exclude, tile, overlap, precision)
    if engine == "classical":
        return classical.segment_classical(image, nm_per_px=nm_per_px, exclude=exclude).astype(np.float32)
    raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


def segment(image: np.ndarray, engine: str, model: Model | None = None,
            exclude: np.ndarray | None = None, nm_per_px: float | None = None,
            tile: int = 512, overlap: int = 64, precision: str = "fp32",
            threshold: float = 0.5, scale: float = 1.0) -> tuple[np.ndarray, str, dict]:
    """The binary particle mask, which engine made it, and its timing.

    `engine` is "unet" or "classical" as already resolved by the caller (auto
    becomes unet when a live model exists): the engine that ran is always
    reported, never silently swapped. `scale` < 1 segments a shrunk copy
    (pipeline.size) and interpolates the probabilities back to full size.
    """
    started = time.perf_counter()
    if scale < 1.0:
        small = size.shrink(image, scale)
        scaled_nm = nm_per_px * image.shape[1] / small.shape[1] if nm_per_px else None
        prob = size.enlarge(probabilities(small, engine, model, size.shrink_mask(exclude, small.shape),
                                          scaled_nm, tile, overlap, precision), image.shape)
    else:
        prob = probabilities(image, engine, model, exclude, nm_per_px, tile, overlap, precision)
    mask = prob > (threshold if engine == "unet" else 0.5)
    if exclude is not None:
        mask &= ~exclude
    return mask, engine, {"segment_s": time.perf_counter() - started}
