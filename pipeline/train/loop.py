"""Training the U-Net on annotated images, as the study did, on the CPU.

The recipe (DESIGN): IoU loss (here combined with BCE, see `loss_function`),
Adam from lr 0.01 cut by 10 on plateau, early stopping on validation IoU, a 70/30
train/validation split of everything but a fixed test set, and the study's
augmentations plus the noise and intensity changes HAADF images show. Particles
are rare (a few percent of pixels, often less), so crops are drawn centred on a
particle more often than chance would, or the network learns "all background".
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import albumentations as A
import numpy as np
import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file, save

from ..runtime import models
from .. import runtime
from ..io.files import write_atomic
from ..io.image import file_sha256
from .batches import augmenter, pick_example, sample_crop
from .data import Example, by_series, dataset_card, fixed_test_set, split, synthetic_d50_error
from .scoring import choose_threshold, evaluate, evaluate_by_series, score_by_series


@dataclass
class TrainOptions:
    crop: int = 256
    batch: int = 4
    lr: float = 0.01
    max_epochs: int = 200
    steps_per_epoch: int = 40
    # Validation IoU on weak catalyst masks is noisy: at 12 and 4 a fine-tune stopped at
    # epoch 16 with its best at epoch 4, and cut the learning rate at epoch 9.
    patience: int = 20
    plateau_patience: int = 6
    particle_crop_fraction: float = 0.6
    balance_series: bool = True
    # How the model sees a frame (models.INPUT_MODES, recorded in its card as "input").
    # "flattened" subtracts the support's background first; measured in one fine-tune
    # of starter-v2 (README, "How the starter was made"): catalyst detection F1 0.19 ->
    # 0.22 (PtW3 0.50 -> 0.73), but Pt/alumina test IoU 0.68 -> 0.63 and d50 -8 % on
    # 60-100 px synthetic particles, so "plain" stays the default.
    input_mode: str = "plain"
    bce_weight: float = 0.5
    time_budget_s: float | None = None
    precision: str = "auto"
    seed: int = 0
    val_fraction: float = 0.3
    final_fit: bool = True
    final_fit_max_epochs: int = 15
    final_fit_budget_share: float = 0.15
    synthetic_check_images: int = 4
    # Store the activation ranges the model's int8 graph is built from (save_int8_ranges):
    # 20-25 s on a 2-core CPU, most of a tiny training. Not a [train] key: the service
    # always stores them; the tests that judge a training's plumbing turn it off. Without
    # them the int8 graph is calibrated on synthetic tiles, and the guard decides.
    int8_ranges: bool = True


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_val_iou: float = -1.0
    best_epoch: int = -1
    stopped: str = ""
    final_fit: dict = field(default_factory=dict)


def make_batch(examples: list[Example], options: TrainOptions, rng: np.random.Generator,
               augment: A.Compose) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = [], []
    groups = by_series(examples) if options.balance_series else [examples]
    for _ in range(options.batch):
        example = pick_example(groups, rng)
        image, mask = sample_crop(example, options.crop, rng, options.particle_crop_fraction, options.input_mode)
        out = augment(image=np.ascontiguousarray(image, np.float32), mask=mask.astype(np.uint8))
        images.append(out["image"])
        masks.append(out["mask"])
    x = torch.from_numpy(np.stack(images)[:, None].astype(np.float32))
    y = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))
    return x.contiguous(memory_format=torch.channels_last), y


def loss_function(bce_weight: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Jaccard (IoU) loss as in the study; a BCE term keeps gradients alive on
    crops with no particle at all, where the IoU loss has nothing to say."""
    jaccard = smp.losses.JaccardLoss("binary", from_logits=True)
    bce = smp.losses.SoftBCEWithLogitsLoss()
    return lambda logits, target: jaccard(logits, target) + bce_weight * bce(logits, target)


def save_checkpoint(path: Path, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict) -> None:
    """Resumable state without pickle: tensors in safetensors, the rest in JSON."""
    tensors = {f"net.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"opt.{pid}.{key}"] = torch.as_tensor(value).detach().contiguous()
    write_atomic(path, save(tensors))
    write_atomic(path.with_suffix(".json"), json.dumps({**state, "param_groups": opt["param_groups"]}))


def load_checkpoint(path: Path, net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    tensors = load_file(str(path))
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    state = json.loads(path.with_suffix(".json").read_text())
    opt_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, slot = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[slot] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    return state


def train_epoch(net: torch.nn.Module, optimizer: torch.optim.Optimizer, examples: list[Example],
                options: TrainOptions, rng: np.random.Generator, augment: A.Compose,
                loss_fn: Callable, precision: str) -> float:
    """One epoch of `steps_per_epoch` augmented batches; returns the mean loss."""
    net.train()
    losses = []
    for _ in range(options.steps_per_epoch):
        x, y = make_batch(examples, options, rng, augment)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = net(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def final_fit(net: torch.nn.Module, examples: list[Example], history: History,
              options: TrainOptions, time_budget_s: float | None,
              progress: Callable[[str], None] = print) -> dict:
    """The study's last step: go on training the best network on train +
    validation until its training loss is back at the best epoch's, so the
    validation images teach too. There is no validation left to stop on, so the
    loss target, an epoch cap and the time left bound it; the fixed test set
    then judges the result like any other model."""
    best = history.epochs[history.best_epoch]
    target, lr = best["loss"], best["lr"]
    rng = np.random.default_rng(options.seed + 10_000)
    precision = runtime.choose_precision(options.precision)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn, augment = loss_function(options.bce_weight), augmenter()
    started, losses = time.monotonic(), []
    for epoch in range(options.final_fit_max_epochs):
        losses.append(train_epoch(net, optimizer, examples, options, rng, augment, loss_fn, precision))
        elapsed = time.monotonic() - started
        progress(f"final fit epoch {epoch + 1}/{options.final_fit_max_epochs} on {len(examples)} images: "
                 f"loss {losses[-1]:.4f} (target {target:.4f}) {elapsed / (epoch + 1):.0f} s/epoch")
        if losses[-1] <= target:
            stopped = "training loss reached the best epoch's"
            break
        if time_budget_s is not None and elapsed * (epoch + 2) / (epoch + 1) > time_budget_s:
            stopped = "time budget reached"
            break
    else:
        stopped = f"{options.final_fit_max_epochs} epochs"
    net.eval()
    return {"epochs": len(losses), "target_loss": target, "lr": lr, "losses": losses, "stopped": stopped}


def fit(net: torch.nn.Module, train: list[Example], val: list[Example], options: TrainOptions,
        checkpoint: Path | None = None, progress: Callable[[str], None] = print) -> History:
    """Train until validation IoU stops improving (or the time budget runs out),
    and leave the best epoch's weights in `net`."""
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    precision = runtime.choose_precision(options.precision)
    net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1,
                                                           patience=options.plateau_patience)
    loss_fn, augment, history = loss_function(options.bce_weight), augmenter(), History()
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    start_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint, net, optimizer)
        start_epoch, history = state["epoch"] + 1, History(**state["history"])
        rng = np.random.default_rng(options.seed + start_epoch)
        progress(f"resumed from {checkpoint} at epoch {start_epoch}")
    wrapper = models.Model("training", "", net, {}, input_mode=options.input_mode)
    started = time.monotonic()
    for epoch in range(start_epoch, options.max_epochs):
        loss = train_epoch(net, optimizer, train, options, rng, augment, loss_fn, precision)
        scores = evaluate_by_series(wrapper, val, precision) if val else {"iou": 0.0, "ppv": 0.0, "npv": 0.0}
        scheduler.step(scores["iou"])
        elapsed = time.monotonic() - started
        row = {"epoch": epoch, "loss": loss, **scores,
               "lr": optimizer.param_groups[0]["lr"], "elapsed_s": round(elapsed, 1)}
        history.epochs.append(row)
        if scores["iou"] > history.best_val_iou:
            history.best_val_iou, history.best_epoch = scores["iou"], epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        done = epoch + 1 - start_epoch
        eta = elapsed / done * (options.max_epochs - epoch - 1)
        progress(f"epoch {epoch + 1}/{options.max_epochs} loss {row['loss']:.4f} val IoU {scores['iou']:.3f} "
                 f"PPV {scores['ppv']:.3f} "
                 + "".join(f"[{k} {v['iou']:.3f}] " for k, v in scores.get("series", {}).items())
                 + f"best {history.best_val_iou:.3f}@{history.best_epoch + 1} "
                 f"lr {row['lr']:.0e} {elapsed / done:.0f} s/epoch, ETA {eta / 60:.0f} min")
        if checkpoint is not None:
            save_checkpoint(checkpoint, net, optimizer, {"epoch": epoch, "history": asdict(history)})
        if epoch - history.best_epoch >= options.patience:
            history.stopped = f"early stop: no better validation IoU for {options.patience} epochs"
            break
        if options.time_budget_s and elapsed + elapsed / done > options.time_budget_s:
            history.stopped = f"time budget of {options.time_budget_s:.0f} s reached"
            break
    else:
        history.stopped = f"max_epochs {options.max_epochs} reached"
    net.load_state_dict(best_state)
    net.eval()
    return history


def test_set_id(test: list[Example]) -> str:
    return hashlib.sha256("".join(sorted(e.sha256 for e in test)).encode()).hexdigest()[:16]


def run_training(annotations: list[Example], models_dir: Path, options: TrainOptions,
                 synthetic: list[Example] | None = None, name: str | None = None,
                 progress: Callable[[str], None] = print,
                 init: str | None = None) -> tuple[dict, list[Example]]:
    """One training: split, fit, final fit on train + validation, score on the
    fixed test set, save. `init` starts from existing weights (a model name or a
    safetensors path): on a CPU, fine-tuning the live model on the grown
    annotation set takes a fraction of a training from scratch. Whether the new
    model goes live is decided by the service (psdwatch.daemon.models.promotion).

    Returns the new model's card and the test set it was scored on.
    """
    models_dir = Path(models_dir)
    test_hashes = fixed_test_set(models_dir, annotations)
    test = [e for e in annotations if e.sha256 in test_hashes]
    rest = [e for e in annotations if e.sha256 not in test_hashes]
    train, val = split(rest, options.val_fraction)
    train_all = train + (synthetic or [])
    progress(f"training on {len(train)} annotated + {len(synthetic or [])} synthetic, "
             f"validating on {len(val)}, testing on {len(test)}")
    net, init_weights = _initial_net(models_dir, init, progress)
    name = name or time.strftime("unet-%Y%m%d-%H%M%S")
    checkpoint = models_dir / "checkpoints" / f"{name}.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    history = _fit_in_budget(net, train_all, val, options, checkpoint, progress)
    trained = models.Model(name, "", net, {}, input_mode=options.input_mode)
    scores = _scores(trained, val, test, options, progress)
    card = {
        "name": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "code_version": _code_version(),
        "options": asdict(options),
        "data": {"train": dataset_card(train, "annotated"), "validation": dataset_card(val, "annotated"),
                 "synthetic": dataset_card(synthetic or [], "synthetic"), "test": dataset_card(test, "annotated")},
        "test_set": test_set_id(test),
        "threshold": trained.threshold,
        "input": options.input_mode,
        **scores,
        "validation": {"best_iou": history.best_val_iou, "best_epoch": history.best_epoch + 1,
                       "epochs_run": len(history.epochs), "stopped": history.stopped},
        "final_fit": history.final_fit,
        "initial_weights": (str(init_weights.name) + " sha256 " + file_sha256(init_weights)) if init_weights else "random",
        "history": history.epochs,
    }
    weights = models.save_model(net, models_dir, name, card)
    if options.int8_ranges:
        save_int8_ranges(net, file_sha256(weights), models_dir, name, train + val, progress, options.input_mode)
    checkpoint.unlink(missing_ok=True)
    checkpoint.with_suffix(".json").unlink(missing_ok=True)
    return card, test


def _initial_net(models_dir: Path, init: str | None, progress: Callable[[str], None]
                 ) -> tuple[torch.nn.Module, Path | None]:
    """A new U-Net, from random weights or from `init` (a model name or a safetensors path)."""
    net = models.build_unet()
    init_weights = models.resolve_weights(models_dir, init) if init else None
    if init_weights is not None:
        models.load_weights(net, init_weights)
        progress(f"starting from {init_weights}")
    return net, init_weights


def _fit_in_budget(net: torch.nn.Module, train_all: list[Example], val: list[Example], options: TrainOptions,
                   checkpoint: Path, progress: Callable[[str], None]) -> History:
    """Fit with early stopping, then the final fit on train + validation in what is left
    of the time budget (its share is kept back from the first fit)."""
    budget = options.time_budget_s
    fit_options = options
    if budget and options.final_fit and val:
        fit_options = replace(options, time_budget_s=budget * (1 - options.final_fit_budget_share))
    started = time.monotonic()
    history = fit(net, train_all, val, fit_options, checkpoint, progress)
    if options.final_fit and val and history.epochs:
        left = None if not budget else max(0.0, budget - (time.monotonic() - started))
        history.final_fit = final_fit(net, train_all + val, history, options, left, progress)
    return history


def _scores(trained: models.Model, val: list[Example], test: list[Example], options: TrainOptions,
            progress: Callable[[str], None]) -> dict:
    """The threshold chosen on validation (set on `trained`), then the card's honest
    figures: the fixed test set pooled and per series, and d50 on synthetic truth."""
    trained.threshold, threshold_ious = choose_threshold(trained, val)
    progress(f"threshold {trained.threshold:g} (validation IoU {threshold_ious.get(trained.threshold, float('nan')):.3f})")
    test_metrics = evaluate(trained, test) if test else {}
    test_by_series = score_by_series(trained, test) if test else {}
    progress(f"test IoU {test_metrics.get('iou', float('nan')):.3f}; measuring d50 on synthetic truth")
    return {"threshold_validation_iou": {str(k): round(v, 4) for k, v in threshold_ious.items()},
            "test_metrics": test_metrics, "test_metrics_by_series": test_by_series,
            "synthetic_d50_error": synthetic_d50_error(trained, options.synthetic_check_images)}


def save_int8_ranges(net: torch.nn.Module, sha256: str, models_dir: Path, name: str,
                     examples: list[Example], progress: Callable[[str], None], input_mode: str = "plain") -> None:
    """The activation ranges the model's int8 graph is built from, taken from this
    training's own real images (pipeline/runtime/int8.py: synthetic tiles alone left real
    masks at IoU 0.93). A failure costs the int8 path, never the model."""
    from ..runtime import int8, onnx as onnx_runtime

    try:
        fp32 = onnx_runtime.fp32_graph(lambda: net, sha256, models_dir)
        step = max(1, len(examples) // 18)
        images = [e.prepared(input_mode) for e in examples[::step]]
        int8.save_ranges(fp32, images, int8.ranges_path(models_dir, name))
    except Exception as error:  # noqa: BLE001
        progress(f"int8 ranges not saved ({type(error).__name__}: {error}): the model runs without int8")


def _code_version() -> str:
    from .. import __version__
    return __version__
