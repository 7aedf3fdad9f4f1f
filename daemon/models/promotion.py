"""Promotion: a newly trained model goes live only if it measures better.

The rule is the service's, not the science's: pipeline.train fits and scores a
model on the fixed test set; here it is compared with what runs now (the live
model, re-scored on the same test set when its card was measured on another,
or the classical engine when none is live), series by series (a lab's own
catalysts and the Pt/alumina patches are judged apart), and LIVE is moved only when
the new model is not worse beyond noise on any series and better on their mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...pipeline.segment import classical
from ...pipeline import metrics
from ...pipeline.runtime import models
from ...pipeline.train.loop import Example, TrainOptions, run_training, test_set_id
from ...pipeline.train.scoring import evaluate, score_by_series
from .live import live_model_name, resolve_init, set_live
from ..config import Config


def train_options(config: Config, *, init: str | None = None, final_fit: bool = True,
                  **given: int | float | str | None) -> TrainOptions:
    """What one training run does: [train] (and [segment] precision), each key
    overridden where `given` holds a value (the command line's options; None: the
    configuration's). A fine-tune (`init`) starts at [train] finetune_lr, a
    training from scratch at lr; time_budget is in minutes."""
    train = config.train

    def pick(key: str):
        return given[key] if given.get(key) is not None else getattr(train, key)

    budget = pick("time_budget")
    return TrainOptions(
        max_epochs=pick("max_epochs"), steps_per_epoch=pick("steps"), crop=pick("crop"), batch=pick("batch"),
        lr=given.get("lr") or (train.finetune_lr if init else train.lr),
        time_budget_s=budget * 60 if budget else None, final_fit=final_fit,
        synthetic_check_images=pick("d50_check_images"), precision=config.segment.precision,
        input_mode=pick("input"))


NOISE = 0.02  # a per-series score may drop this much (or 0.1/sqrt(images), if more) and count as unchanged


def is_better(candidate: dict, live: dict | None) -> tuple[bool, str]:
    """Promotion rule, on the same fixed test set. Per series of the test set (IoU for
    masks, detection F1 for boxes): not worse beyond noise on any series, and better on
    their mean; the reason names every series. Cards from before per-series scores:
    higher test IoU and PPV not worse."""
    if live is None:
        return True, "nothing to compare with"
    if candidate.get("test_set") != live.get("test_set"):
        return False, "scored on a different test set than the live model"
    new_series, old_series = candidate.get("test_metrics_by_series"), live.get("test_metrics_by_series")
    if new_series and old_series:
        return _better_by_series(new_series, old_series, live.get("name", "the live model"))
    new, old = candidate.get("test_metrics", {}), live.get("test_metrics", {})
    if new.get("iou", -1) <= old.get("iou", -1):
        return False, (f"test IoU {new.get('iou', 0):.3f} is not above {old.get('iou', 0):.3f} "
                       f"of {live.get('name', 'the live model')}")
    if new.get("ppv", -1) < old.get("ppv", -1):
        return False, (f"test PPV {new.get('ppv', 0):.3f} is below {old.get('ppv', 0):.3f} "
                       f"of {live.get('name', 'the live model')}")
    return True, (f"test IoU {new['iou']:.3f} > {old.get('iou', 0):.3f} and PPV {new['ppv']:.3f} >= "
                  f"{old.get('ppv', 0):.3f} of {live.get('name', 'the live model')}")


def _better_by_series(new: dict, old: dict, live_name: str) -> tuple[bool, str]:
    shared = sorted(set(new) & set(old))
    if not shared:
        return False, "no test series scored for both models"
    worse, parts = [], []
    for name in shared:
        a, b, n = new[name]["score"], old[name]["score"], max(1, int(new[name].get("n", 1)))
        parts.append(f"{name} {a:.3f} vs {b:.3f}")
        if a < b - max(NOISE, 0.1 / np.sqrt(n)):
            worse.append(name)
    mean_new = float(np.mean([new[k]["score"] for k in shared]))
    mean_old = float(np.mean([old[k]["score"] for k in shared]))
    detail = f"{'; '.join(parts)}; mean {mean_new:.3f} vs {mean_old:.3f} of {live_name}"
    if worse:
        return False, f"worse beyond noise on {', '.join(worse)} ({detail})"
    if mean_new <= mean_old:
        return False, f"not better on the mean over series ({detail})"
    return True, f"better on the mean and not worse on any series ({detail})"


def classical_card(test: list[Example]) -> dict:
    """What a model must beat when none is live: the classical engine, which is
    what `auto` runs without a model, scored on the same test set."""
    total = np.zeros(4, np.int64)
    for example in test:
        total += metrics.confusion(classical.segment_classical(example.data), example.mask)
    return {"name": "classical", "test_set": test_set_id(test), "test_metrics": metrics.scores(total)}


def trained_on(card: dict) -> set[str]:
    """The annotation hashes a model's card says it learnt from (train and validation)."""
    data = card.get("data", {})
    return {h for part in ("train", "validation") for h in data.get(part, {}).get("sha256", [])}


def incumbent_card(models_dir: Path, test: list[Example]) -> dict:
    """What a new model must beat, scored on this test set: the live model's card,
    re-scored when its card was measured on another test set (a starter model
    meets a lab's own annotations), or the classical engine when none is live."""
    live = live_model_name(models_dir)
    if live is None:
        return classical_card(test)
    card = models.load_card(models_dir, live) or {"name": live}
    if card.get("test_set") != test_set_id(test) and test:
        model = models.load_model(models_dir, live)
        card = {**card, "test_set": test_set_id(test), "test_metrics": evaluate(model, test),
                "test_metrics_by_series": score_by_series(model, test)}
    return card


def promote(models_dir: Path, card: dict, test: list[Example]) -> tuple[bool, str]:
    """Make the model of `card` live if it beats the incumbent; (went live, why).

    Test images the live model learnt from (its card lists them) would favour it: both
    models are then judged on the rest of the test set only, and the reason says so."""
    seen = trained_on(models.load_card(models_dir, live_model_name(models_dir) or "") or {})
    fair = [e for e in test if e.sha256 not in seen]
    note = ""
    if len(fair) < len(test):
        note = f"; {len(test) - len(fair)} test images left out: the live model learnt from them"
        if fair:
            candidate = models.load_model(models_dir, card["name"])
            card = {**card, "test_set": test_set_id(fair), "test_metrics": evaluate(candidate, fair),
                    "test_metrics_by_series": score_by_series(candidate, fair)}
        else:
            return False, "every test image was learnt from by the live model: nothing fair to compare on"
    better, why = is_better(card, incumbent_card(models_dir, fair))
    if better:
        set_live(models_dir, card["name"])
    return better, why + note


def train_and_promote(annotations: list[Example], models_dir: Path, options: TrainOptions,
                      synthetic: list[Example] | None = None, name: str | None = None,
                      progress=print, init: str | None = None) -> tuple[dict, bool, str]:
    """One training (`init` may say "live"), then the promotion rule. Returns the
    new model's card, whether it went live, and why."""
    card, test = run_training(annotations, models_dir, options, synthetic, name, progress,
                              init=resolve_init(models_dir, init))
    better, why = promote(models_dir, card, test)
    progress(f"model {card['name']}: {'live' if better else 'kept, not live'} ({why})")
    return card, better, why
