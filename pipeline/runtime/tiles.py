"""The network over a whole frame: overlapping tiles, blended, so any frame size
runs in bounded memory, by whichever runtime the prepared model holds."""

from __future__ import annotations

import numpy as np

from .model_input import normalise
from .models import Model
from .torch_net import run_network


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
                        tile: int = 512, overlap: int = 64, precision: str | None = None,
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

            logits = run_network(model.net, torch.from_numpy(stack), precision or model.precision)
            probs = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
        for (y, x0), p in zip(chunk, probs):
            acc[y:y + th, x0:x0 + tw] += p * window
            weight[y:y + th, x0:x0 + tw] += window
    return (acc / np.maximum(weight, 1e-6))[:h, :w]
