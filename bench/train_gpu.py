"""The recipe that trained the starter U-Net on a GPU, with its blocked cross-validation.

    python bench/train_gpu.py --data DIR --out DIR --run final|fold0..fold4 [--budget S]

Run where CUDA is present (one H200 did the starter in minutes; it runs on a CPU too,
only far slower). It needs torch, segmentation-models-pytorch, OpenCV, SciPy and
numpy, nothing of psdwatch's service. DIR holds `ptal.npz` (the 45 Pt/alumina patches
and their human masks, as bench/train_gpu_data.py packs them from ../shared/data) and
`catalysts/` (the boxed HAADF catalyst frames, JPEG + YOLO boxes).

Why it differs from `psdwatch train` (pipeline/train/loop.py, the CPU retrain):
- Three kinds of example in every batch, each a third: real Pt/alumina patches with
  human masks; real catalyst frames supervised by their boxes; and particles rendered
  on the fly by `render_batch`, a generator other than pipeline/synth's: projected
  spheres, ellipsoids and flat-topped facets (the family (1 - (r/R)^2)^p, p from 0.05
  to 0.5), touching neighbours, dark and thick bright supports with grains, probe
  blur and shot noise, truth = the geometric outline (where thickness meets support).
- Boxes as boxes: inside each box the particle mask made by pipeline.weak_masks is
  positive and the rest of the box is not scored (the edge is uncertain there); outside
  every box is support; and each box must hold at least one confident pixel (a
  multiple-instance term: the max probability inside its inscribed ellipse is pushed to
  1), so that a particle a person boxed is never "background" for the network.
- Particles shown at the sizes inference shows them: each catalyst crop is resampled so
  its frame's boxed particles span 8-56 px (log-uniform), from an area-averaged pyramid.
- Augmentation on the GPU (affine resampling, flips, contrast, gamma, noise, blur).
- The time budget, not an epoch count, ends training; the learning rate follows a
  cosine from 1e-3 (Adam); bf16 autocast on CUDA.

Folds: foldK holds out Pt/alumina patches 9K..9K+8 (contiguous blocks: neighbouring
slices are near copies) and one catalyst series (fold0 Cu, fold1 Cu_silica, fold2
Pd_silica, fold3 PtW; fold4 the frames bench/training_data.HELD_OUT keeps out of the
CPU starter, so fold4 compares with it); "final" trains on everything. Each run writes
OUT/<run>.json (held-out figures at several thresholds) and, with --save, its weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent

CATALYST_SERIES = {"fold0": ("Cu1", "Cu3", "Cu4"), "fold1": ("Cu_silica1", "Cu_silica2", "Cu_silica3"),
                   "fold2": ("Pd_silica1", "Pd_silica2", "Pd_silica3", "Pd_silica4"),
                   "fold3": ("PtW1", "PtW2", "PtW3"), "fold4": ("Cu4", "Cu_silica2", "Pd_silica2", "PtW3")}
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
CROP = 256
LEVELS = 4  # pyramid levels 1, 1/2, 1/4, 1/8


def import_weak_masks():
    """pipeline/train/weak_masks.py without installing psdwatch (the GPU machine has no venv of it)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("weak_masks", REPO / "pipeline" / "weak_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def normalise(image: np.ndarray) -> np.ndarray:
    """As pipeline.segment.normalise(mode="plain"): robust percentiles of the whole frame."""
    lo, hi = np.percentile(image, (1.0, 99.5))
    out = (image.astype(np.float32) - lo) / (float(hi - lo) if hi > lo else 1.0)
    return np.clip(out, -1.0, 4.0).astype(np.float32)


def pyramid(stack: np.ndarray) -> list[np.ndarray]:
    """Channels (image, target, ignore, valid, box id) at 1, 1/2, 1/4, 1/8: image and
    target area-averaged, ignore by max, box ids by nearest."""
    levels = [stack]
    for _ in range(LEVELS - 1):
        prev = levels[-1]
        h, w = prev.shape[1] // 2, prev.shape[2] // 2
        if min(h, w) < 64:
            break
        img = cv2.resize(prev[0], (w, h), interpolation=cv2.INTER_AREA)
        tgt = cv2.resize(prev[1], (w, h), interpolation=cv2.INTER_AREA)
        ign = cv2.dilate(prev[2], np.ones((2, 2), np.uint8))[::2, ::2][:h, :w]
        val = cv2.erode(prev[3], np.ones((2, 2), np.uint8))[::2, ::2][:h, :w]
        ids = prev[4][::2, ::2][:h, :w]
        # a pixel half particle is undecided: not scored at this level
        ign = np.maximum(ign, ((tgt > 0.25) & (tgt < 0.75)).astype(np.float32))
        levels.append(np.stack([img, (tgt >= 0.5).astype(np.float32), ign, val, ids]))
    return levels


class Example:
    def __init__(self, name: str, series: str, image: np.ndarray, target: np.ndarray,
                 ignore: np.ndarray, box_ids: np.ndarray, diameter_px: float,
                 centres: np.ndarray, device: str):
        stack = np.stack([normalise(image), target.astype(np.float32), ignore.astype(np.float32),
                          np.ones(image.shape, np.float32), box_ids.astype(np.float32)]).astype(np.float32)
        self.levels = [torch.from_numpy(lv).to(device) for lv in pyramid(stack)]
        self.name, self.series, self.diameter_px, self.centres = name, series, diameter_px, centres
        self.shape = image.shape


def load_patches(data: Path, device: str, keep) -> tuple[list[Example], list[tuple]]:
    z = np.load(data / "ptal.npz")
    masks = np.unpackbits(z["masks"], axis=-1)[..., :z["images"].shape[-1]].astype(bool)
    train, held = [], []
    for name, image, mask in zip(z["names"], z["images"], masks):
        name = str(name)
        if not keep(name):
            held.append((name, image, mask))
            continue
        ys, xs = np.nonzero(mask)
        centres = np.column_stack([xs, ys]).astype(np.float32)[:: max(1, len(xs) // 200)]
        train.append(Example(name, "ptal", image, mask, np.zeros_like(mask), np.zeros(mask.shape),
                             14.0, centres, device))
    return train, held


def read_catalyst(path: Path, weak) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    boxes = weak.read_yolo_boxes(path.with_suffix(".txt"), image.shape)
    return image, boxes


def catalyst_example(path: Path, weak, device: str) -> Example:
    """Targets from boxes: the weak mask positive, the rest of each box unscored, outside
    the boxes support; a margin along the frame's edge unscored (cut particles are not boxed)."""
    image, boxes = read_catalyst(path, weak)
    h, w = image.shape
    mask = weak.mask_from_boxes(image, boxes)
    in_box = np.zeros((h, w), np.uint8)
    ids = np.zeros((h, w), np.float32)
    diam = np.sqrt(np.maximum(1, (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
    for k, (x0, y0, x1, y1) in enumerate(boxes, start=1):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        axes = (max(1, int(round((x1 - x0) / 2))), max(1, int(round((y1 - y0) / 2))))
        cv2.rectangle(in_box, (int(x0) - 1, int(y0) - 1), (int(math.ceil(x1)) + 1, int(math.ceil(y1)) + 1), 1, -1)
        core = (max(1, int(axes[0] * 0.6)), max(1, int(axes[1] * 0.6)))
        tmp = np.zeros((h, w), np.uint8)
        cv2.ellipse(tmp, (int(round(cx)), int(round(cy))), core, 0, 0, 360, 1, -1)
        ids[tmp > 0] = k
    ignore = (in_box > 0) & ~mask
    margin = int(np.percentile(diam, 90) * 0.6) if len(diam) else 8
    ignore[:margin] = ignore[-margin:] = True
    ignore[:, :margin] = ignore[:, -margin:] = True
    centres = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2]).astype(np.float32)
    return Example(path.stem, "cat", image, mask, ignore, ids, float(np.median(diam)), centres, device)


def sample_crops(examples: list[Example], n: int, size_range: tuple[float, float] | None,
                 rng: np.random.Generator, device: str) -> torch.Tensor:
    """n crops (B, 5, CROP, CROP): a random example, scale, rotation, flip; the centre on a
    particle 60 % of the time. size_range: the particles' diameter after resampling
    (log-uniform); None = scale 0.75-1.33 around the native size."""
    out = []
    for _ in range(n):
        ex = examples[rng.integers(len(examples))]
        if size_range is None:
            s = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
        else:
            s = float(np.exp(rng.uniform(*np.log(size_range)))) / ex.diameter_px
        level = int(np.clip(np.floor(np.log2(1 / s)), 0, len(ex.levels) - 1)) if s < 1 else 0
        src = ex.levels[level]
        s_level = s * 2 ** level
        h, w = src.shape[1:]
        if len(ex.centres) and rng.random() < 0.6:
            cx, cy = ex.centres[rng.integers(len(ex.centres))] / 2 ** level + rng.normal(0, 8, 2)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        theta = rng.uniform(0, 2 * np.pi)
        flip = -1.0 if rng.random() < 0.5 else 1.0
        half = CROP / 2 / s_level  # source pixels from the crop's centre to its edge
        c, si = math.cos(theta) * half, math.sin(theta) * half
        # affine_grid maps output [-1, 1] to input [-1, 1] coordinates
        mat = torch.tensor([[[flip * c / (w / 2), -si / (w / 2), (cx - w / 2) / (w / 2)],
                             [flip * si / (h / 2), c / (h / 2), (cy - h / 2) / (h / 2)]]],
                           dtype=torch.float32, device=device)
        grid = F.affine_grid(mat, (1, 1, CROP, CROP), align_corners=False)
        img = F.grid_sample(src[None, :1], grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        lab = F.grid_sample(src[None, 1:], grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out.append(torch.cat([img, lab], 1))
    return torch.cat(out)


def _smooth_field(b: int, sigma: float, device: str, gen: torch.Generator) -> torch.Tensor:
    small = max(4, int(CROP / sigma))
    noise = torch.randn(b, 1, small, small, device=device, generator=gen)
    return F.interpolate(noise, size=(CROP, CROP), mode="bicubic", align_corners=False)


def render_batch(b: int, device: str, gen: torch.Generator, rng: np.random.Generator) -> torch.Tensor:
    """Synthetic HAADF crops (B, 5, CROP, CROP) like sample_crops' output, from projected
    thickness: spheres to flat tops, ellipsoids, on dark or thick bright textured support."""
    k = 48
    yy, xx = torch.meshgrid(torch.arange(CROP, device=device, dtype=torch.float32) + 0.5,
                            torch.arange(CROP, device=device, dtype=torch.float32) + 0.5, indexing="ij")
    out = []
    for i in range(b):
        d_typ = float(np.exp(rng.uniform(np.log(6), np.log(60))))
        n = int(np.clip(rng.poisson(min(k, 0.25 * CROP * CROP / (d_typ ** 2) * rng.uniform(0.1, 1.0))), 1, k))
        radius = torch.tensor(d_typ / 2 * np.exp(rng.normal(0, 0.3, n)), device=device, dtype=torch.float32)
        cx = torch.tensor(rng.uniform(-20, CROP + 20, n), device=device, dtype=torch.float32)
        cy = torch.tensor(rng.uniform(-20, CROP + 20, n), device=device, dtype=torch.float32)
        aspect = torch.tensor(np.exp(rng.normal(0, 0.15, n)), device=device, dtype=torch.float32)
        ang = torch.tensor(rng.uniform(0, np.pi, n), device=device, dtype=torch.float32)
        power = torch.tensor(rng.uniform(0.05, 0.5, n), device=device, dtype=torch.float32)
        dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
        u = (dx * torch.cos(ang)[:, None, None] + dy * torch.sin(ang)[:, None, None]) * aspect[:, None, None]
        v = (-dx * torch.sin(ang)[:, None, None] + dy * torch.cos(ang)[:, None, None]) / aspect[:, None, None]
        rho2 = (u * u + v * v) / (radius[:, None, None] ** 2)
        inside = rho2 < 1
        thick = torch.where(inside, (1 - rho2).clamp(min=0) ** power[:, None, None], torch.zeros_like(rho2))
        thick = (thick * radius[:, None, None]).sum(0)  # projected thickness ~ R
        truth = inside.any(0).float()
        bright = rng.random() < 0.5
        support = (rng.uniform(0.5, 3.0) if bright else rng.uniform(0.0, 0.3))
        tex = sum(float(rng.uniform(0, 0.4)) * _smooth_field(1, s, device, gen)[0, 0] for s in (3, 12, 48))
        grains = torch.relu(_smooth_field(1, float(rng.uniform(4, 20)), device, gen)[0, 0] - 1.0)
        z = float(rng.uniform(0.6, 4.0))  # metal per unit thickness against support
        signal = support * (1 + tex) + support * float(rng.uniform(0, 0.8)) * grains + z * thick / max(d_typ / 2, 1)
        sigma = float(rng.uniform(0.5, 1.6))
        signal = _gauss(signal[None, None], sigma)[0, 0].clamp(min=0)
        dose = float(np.exp(rng.uniform(np.log(3), np.log(200))))
        noisy = torch.poisson(signal * dose, generator=gen) / dose
        noisy = noisy + float(rng.uniform(0, 0.05)) * torch.randn(noisy.shape, device=device, generator=gen)
        lo, hi = torch.quantile(noisy.flatten()[::7], torch.tensor([0.01, 0.995], device=device))
        img = ((noisy - lo) / (hi - lo).clamp(min=1e-6)).clamp(-1, 4)
        zero = torch.zeros_like(img)
        out.append(torch.stack([img, truth, zero, torch.ones_like(img), zero])[None])
    return torch.cat(out)


def _gauss(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = g / g.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))


def intensity_augment(img: torch.Tensor, rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
    """Contrast, offset, gamma-like bend, extra noise, blur: per crop."""
    out = []
    for x in img:
        x = x * float(np.exp(rng.normal(0, 0.2))) + float(rng.normal(0, 0.1))
        if rng.random() < 0.3:
            x = torch.sign(x) * x.abs() ** float(np.exp(rng.normal(0, 0.2)))
        if rng.random() < 0.3:
            x = x + float(rng.uniform(0, 0.15)) * torch.randn(x.shape, device=x.device, generator=gen)
        if rng.random() < 0.2:
            x = _gauss(x[None], float(rng.uniform(0.4, 1.2)))[0]
        out.append(x.clamp(-1, 4))
    return torch.stack(out)


def loss_fn(logits: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    target, ignore, valid, ids = batch[:, 1:2], batch[:, 2:3], batch[:, 3:4], batch[:, 4:5]
    weight = ((ignore < 0.5) & (valid > 0.5)).float()
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum() / weight.sum().clamp(min=1)
    prob = torch.sigmoid(logits) * weight
    inter = (prob * target).sum()
    union = (prob + target * weight).sum() - inter
    jaccard = 1 - (inter + 1) / (union + 1)
    # multiple instance: per box in each crop, its most confident pixel should be particle
    mil = logits.new_zeros(())
    flat_ids = ids.long().flatten(1)
    if flat_ids.max() > 0:
        offs = (torch.arange(len(batch), device=batch.device) * 100000)[:, None]
        keys = (flat_ids + offs)[flat_ids > 0]
        vals = logits.float().flatten(1)[flat_ids > 0]
        uniq, inv = torch.unique(keys, return_inverse=True)
        best = torch.full((len(uniq),), -1e4, device=batch.device).scatter_reduce(0, inv, vals, "amax")
        mil = F.binary_cross_entropy_with_logits(best, torch.ones_like(best))
    return bce + jaccard + 0.3 * mil


@torch.no_grad()
def predict(net, image: np.ndarray, device: str) -> np.ndarray:
    x = normalise(image)
    h, w = x.shape
    ph, pw = (-h) % 32, (-w) % 32
    t = torch.from_numpy(np.pad(x, ((0, ph), (0, pw)), mode="reflect"))[None, None].to(device)
    with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                        enabled=device.startswith("cuda")):
        p = torch.sigmoid(net(t).float())
    return p[0, 0, :h, :w].cpu().numpy()


def detection(prob: np.ndarray, boxes: np.ndarray, thr: float) -> dict:
    """Particles found against boxes: a component whose centroid lies in a box, one to one
    (the issue's rule), and box IoU >= 0.5 (Hungarian)."""
    from scipy.optimize import linear_sum_assignment
    n, labels, stats, cents = cv2.connectedComponentsWithStats((prob > thr).astype(np.uint8), connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 4]
    comps = np.array([[stats[i, 0], stats[i, 1], stats[i, 0] + stats[i, 2], stats[i, 1] + stats[i, 3]] for i in keep]).reshape(-1, 4)
    cen = cents[keep].reshape(-1, 2)
    res = {}
    if len(comps) == 0 or len(boxes) == 0:
        return {"centroid": {"tp": 0, "found": len(comps), "boxes": len(boxes)},
                "iou50": {"tp": 0, "found": len(comps), "boxes": len(boxes)}}
    inside = ((cen[:, None, 0] >= boxes[None, :, 0]) & (cen[:, None, 0] <= boxes[None, :, 2]) &
              (cen[:, None, 1] >= boxes[None, :, 1]) & (cen[:, None, 1] <= boxes[None, :, 3]))
    r, c = linear_sum_assignment(-inside.astype(float))
    res["centroid"] = {"tp": int(inside[r, c].sum()), "found": len(comps), "boxes": len(boxes)}
    ix0 = np.maximum(comps[:, None, 0], boxes[None, :, 0]); iy0 = np.maximum(comps[:, None, 1], boxes[None, :, 1])
    ix1 = np.minimum(comps[:, None, 2], boxes[None, :, 2]); iy1 = np.minimum(comps[:, None, 3], boxes[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = inter / (area(comps)[:, None] + area(boxes)[None] - inter)
    r, c = linear_sum_assignment(-iou)
    res["iou50"] = {"tp": int((iou[r, c] >= 0.5).sum()), "found": len(comps), "boxes": len(boxes)}
    return res


def evaluate(net, held_patches, held_cats, weak, device: str) -> dict:
    net.eval()
    out = {"patches": {}, "catalysts": {}}
    if held_patches:
        conf = {t: np.zeros(3) for t in THRESHOLDS}  # tp, fp, fn
        for _, image, mask in held_patches:
            p = predict(net, image, device)
            for t in THRESHOLDS:
                pred = p > t
                conf[t] += [(pred & mask).sum(), (pred & ~mask).sum(), (~pred & mask).sum()]
        out["patches"] = {str(t): {"iou": c[0] / max(1, c.sum()), "ppv": c[0] / max(1, c[0] + c[1]),
                                   "recall": c[0] / max(1, c[0] + c[2])} for t, c in conf.items()}
    for path in held_cats:
        image, boxes = read_catalyst(path, weak)
        d = float(np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))
        frame = {}
        for label, scale in (("full", 1.0), ("oracle16", min(1.0, 16 / d)), ("oracle24", min(1.0, 24 / d))):
            small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            p = predict(net, small, device)
            if scale != 1.0:
                p = cv2.resize(p, image.shape[::-1], interpolation=cv2.INTER_LINEAR)
            frame[label] = {str(t): detection(p, boxes, t) for t in THRESHOLDS}
        out["catalysts"][path.stem] = frame
    net.train()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--budget", type=float, default=300.0)
    ap.add_argument("--batch", type=int, default=8, help="crops of each kind per step")
    ap.add_argument("--init", default="")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--adapt", action="store_true", help="after training, add one frame of the held-out series")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine to 2 % of it)")
    ap.add_argument("--name", default="", help="output name (default: the run's)")
    args = ap.parse_args()
    name = args.name or args.run
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    weak = import_weak_masks()
    import segmentation_models_pytorch as smp

    fold = args.run if args.run.startswith("fold") else None
    k = int(fold[4:]) if fold else -1
    held_names = {f"ptal_{i:03d}" for i in range(9 * k, 9 * k + 9)} if fold else set()
    patches, held_patches = load_patches(args.data, device, lambda n: n not in held_names)
    cat_paths = sorted((args.data / "catalysts").glob("*.jpg"))
    held_series = set(CATALYST_SERIES[fold]) if fold else set()
    cats = [catalyst_example(p, weak, device) for p in cat_paths if p.stem not in held_series]
    held_cats = [p for p in cat_paths if p.stem in held_series]

    net = smp.Unet("tu-seresnet34", encoder_weights=None, in_channels=1, classes=1)
    if args.init:
        from safetensors.torch import load_file
        net.load_state_dict({k2: v.float() for k2, v in load_file(args.init).items()})
    net = net.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    t0, step, losses = time.time(), 0, []
    log = {"run": args.run, "name": name, "init": args.init or "random", "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
           "train_patches": len(patches), "train_catalysts": [c.name for c in cats],
           "held_patches": sorted(held_names), "held_catalysts": [p.stem for p in held_cats]}
    while time.time() - t0 < args.budget:
        frac = (time.time() - t0) / args.budget
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        parts = [sample_crops(patches, args.batch, None, rng, device)]
        if cats:
            parts.append(sample_crops(cats, args.batch, (8, 56), rng, device))
        parts.append(render_batch(args.batch, device, gen, rng))
        batch = torch.cat(parts)
        x = intensity_augment(batch[:, :1], rng, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16,
                            enabled=device == "cuda"):
            logits = net(x).float()
        loss = loss_fn(logits, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()) if step % 20 == 0 else losses[-1] if losses else 0.0)
        step += 1
        if step % 200 == 0:
            print(f"{name} step {step} {time.time() - t0:.0f}s loss {np.mean(losses[-200:]):.3f}", flush=True)
    log.update(steps=step, train_s=round(time.time() - t0, 1), final_loss=float(np.mean(losses[-200:])))
    log["eval"] = evaluate(net, held_patches, held_cats, weak, device) if fold else {}
    if args.adapt and fold and held_cats:
        # the nightly retrain's promise: one boxed frame of a new lab's series, a short fine-tune
        first, rest = held_cats[0], held_cats[1:]
        cats.append(catalyst_example(first, weak, device))
        for g in opt.param_groups:
            g["lr"] = 1e-4
        t1 = time.time()
        while time.time() - t1 < args.budget * 0.15:
            batch = torch.cat([sample_crops(patches, args.batch, None, rng, device),
                               sample_crops(cats[-1:], args.batch, (8, 56), rng, device),
                               sample_crops(cats, args.batch, (8, 56), rng, device)])
            x = intensity_augment(batch[:, :1], rng, gen).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16,
                                enabled=device == "cuda"):
                loss = loss_fn(net(x).float(), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log["adapted_on"] = first.stem
        log["adapt_eval"] = evaluate(net, [], rest, weak, device)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.save:
        from safetensors.torch import save
        blob = save({k2: v.detach().cpu().contiguous().half() if v.is_floating_point() else v.detach().cpu().contiguous()
                     for k2, v in net.state_dict().items()})
        part = 15 * 2 ** 20
        for i in range(0, len(blob), part):
            (args.out / f"{name}.st.{i // part}").write_bytes(blob[i:i + part])
    (args.out / f"{name}.json").write_text(json.dumps(log, indent=1, default=float))
    print(f"{name}: {step} steps in {log['train_s']} s", flush=True)




def register(weights: Path, name: str, threshold: float, folds_dir: Path, data: Path, note: str) -> None:
    """Make a psdwatch model (weights, card, int8 ranges) of weights this script trained:
    run here, where psdwatch is installed. The card's test figures are the blocked
    cross-validation of the folds (OUT/fold*.json), since the model itself trained on all
    the shared data."""
    import hashlib

    from psdwatch.pipeline.runtime import models
    from psdwatch.pipeline.train.data import find_annotations, load_example
    from psdwatch.pipeline.io.image import file_sha256

    net = models.load_weights(models.build_unet(), weights)
    folds = [json.loads(p.read_text()) for p in sorted(folds_dir.glob("fold[0-4].json"))]
    t = str(threshold)
    cv = {"patches_iou": [round(f["eval"]["patches"][t]["iou"], 3) for f in folds],
          "patches_ppv": [round(f["eval"]["patches"][t]["ppv"], 3) for f in folds],
          "patches_recall": [round(f["eval"]["patches"][t]["recall"], 3) for f in folds]}
    cv["iou"], cv["ppv"] = float(np.mean(cv["patches_iou"])), float(np.mean(cv["patches_ppv"]))
    by_series = {}
    for f in folds[:4]:  # folds 0-3 each leave one catalyst series out
        tp = found = boxes = 0
        for frame in f["eval"]["catalysts"].values():
            c = frame["full"][t]["centroid"]
            tp, found, boxes = tp + c["tp"], found + c["found"], boxes + c["boxes"]
        p, r = tp / max(1, found), tp / max(1, boxes)
        by_series[",".join(f["held_catalysts"])] = {"precision": round(p, 3), "recall": round(r, 3),
                                                    "f1": round(2 * p * r / max(1e-9, p + r), 3)}
    patches = [load_example(i, m) for i, m in find_annotations(data / "pt-alumina-haadf")]
    boxed = sorted((data / "catalysts-boxed" / "images").glob("*.jpg"))
    cat_hashes = [hashlib.sha256(p.read_bytes() + (p.parent.parent / "labels" / f"{p.stem}.txt").read_bytes()).hexdigest()
                  for p in boxed if p.stem not in ("PtC1", "Pt_carbon1")]
    card = {"name": name, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "code_version": "0.1.0",
            "input": "plain", "threshold": threshold, "encoder": "tu-seresnet34 (SE-ResNet34 through timm)",
            "initial_weights": "random", "recipe": "bench/train_gpu.py", "training": note,
            "data": {"train": {"kind": "annotated", "count": len(patches) + len(cat_hashes),
                               "sha256": sorted([e.sha256 for e in patches] + cat_hashes),
                               "particle_diameter_px": {"d50": 14.0}},
                     "synthetic": {"kind": "rendered on the fly (train_gpu.render_batch)", "count": 0}},
            "test_set": "cross-validation",
            "test_metrics": {"iou": round(cv["iou"], 4), "ppv": round(cv["ppv"], 4)},
            "cross_validation": {"patches_by_block": cv, "catalysts_leave_series_out": by_series,
                                 "how": "5 folds, each trained without one block of 9 patches and one catalyst "
                                        "series, 300 s on one H200 shared by 7 runs; threshold " + t},
            "weights_precision": "fp16 on disk (trained in bf16 autocast)"}
    path = models.save_model(net, REPO / "models", name, card, half=True)
    # int8 ranges from what the model meets: a third of the patches outside
    # models/test_set.json (which judge the int8 graph), the centre of each boxed catalyst
    # frame and the synthetic calibration tiles. From the patches alone the graph failed
    # its guard on the bright-support tile (IoU 0.945 < 0.98); with these it passed (0.986).
    from psdwatch.pipeline.io.image import load_image
    from psdwatch.pipeline.runtime.model_input import normalise
    from psdwatch.pipeline.runtime import int8, onnx

    test = set(json.loads((REPO / "models" / "test_set.json").read_text())["sha256"])
    images = [e.prepared("plain") for e in patches if e.sha256 not in test][::3]
    for frame in boxed:
        if frame.stem not in ("PtC1", "Pt_carbon1"):
            x = normalise(load_image(frame).data)
            cy, cx = x.shape[0] // 2, x.shape[1] // 2
            images.append(x[max(0, cy - 256):cy + 256, max(0, cx - 256):cx + 256])
    fp32 = onnx.fp32_graph(lambda: net, file_sha256(path), REPO / "models")
    int8.save_ranges(fp32, images + int8.tiles(int8.CALIBRATION, 4242), int8.ranges_path(REPO / "models", name))
    print(f"{path}: card and int8 ranges written")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "register":
        reg = argparse.ArgumentParser(description="write a psdwatch model of trained weights")
        reg.add_argument("register")
        reg.add_argument("--weights", type=Path, required=True)
        reg.add_argument("--name", required=True)
        reg.add_argument("--threshold", type=float, default=0.7)
        reg.add_argument("--folds", type=Path, required=True, help="folder of the folds' JSON")
        reg.add_argument("--note", default="")
        a = reg.parse_args()
        register(a.weights, a.name, a.threshold, a.folds, REPO.parent / "shared" / "data", a.note)
    else:
        sys.exit(main())
