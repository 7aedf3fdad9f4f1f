"""Promotion: a newly trained model goes live only if it measures better.

The rule is the service's, not the science's: pipeline.train fits and scores a
model on the fixed test set; here it is compared with what runs now (the live
model, re-scored on the same test set when its card was measured on another,
or the classical engine when none is live), and LIVE is moved only when the new
model has the higher test IoU with a PPV not worse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..pipeline import classical, metrics, models
from ..pipeline.train import Example, TrainOptions, evaluate, run_training, test_set_id
from .live_model import live_model_name, resolve_init, set_live


def is_better(candidate: dict, live: dict | None) -> tuple[bool, str]:
    """Promotion rule: higher test IoU and PPV not worse, on the same fixed test set."""
    if live is None:
        return True, "nothing to compare with"
    new, old = candidate.get("test_metrics", {}), live.get("test_metrics", {})
    if candidate.get("test_set") != live.get("test_set"):
        return False, "scored on a different test set than the live model"
    if new.get("iou", -1) <= old.get("iou", -1):
        return False, (f"test IoU {new.get('iou', 0):.3f} is not above {old.get('iou', 0):.3f} "
                       f"of {live.get('name', 'the live model')}")
    if new.get("ppv", -1) < old.get("ppv", -1):
        return False, (f"test PPV {new.get('ppv', 0):.3f} is below {old.get('ppv', 0):.3f} "
                       f"of {live.get('name', 'the live model')}")
    return True, (f"test IoU {new['iou']:.3f} > {old.get('iou', 0):.3f} and PPV {new['ppv']:.3f} >= "
                  f"{old.get('ppv', 0):.3f} of {live.get('name', 'the live model')}")


def classical_card(test: list[Example]) -> dict:
    """What a model must beat when none is live: the classical engine, which is
    what `auto` runs without a model, scored on the same test set."""
    total = np.zeros(4, np.int64)
    for example in test:
        total += metrics.confusion(classical.segment_classical(example.data), example.mask)
    return {"name": "classical", "test_set": test_set_id(test), "test_metrics": metrics.scores(total)}


def incumbent_card(models_dir: Path, test: list[Example]) -> dict:
    """What a new model must beat, scored on this test set: the live model's card,
    re-scored when its card was measured on another test set (a starter model
    meets a lab's own annotations), or the classical engine when none is live."""
    live = live_model_name(models_dir)
    if live is None:
        return classical_card(test)
    card = models.load_card(models_dir, live) or {"name": live}
    if card.get("test_set") != test_set_id(test) and test:
        card = {**card, "test_set": test_set_id(test),
                "test_metrics": evaluate(models.load_model(models_dir, live), test)}
    return card


def promote(models_dir: Path, card: dict, test: list[Example]) -> tuple[bool, str]:
    """Make the model of `card` live if it beats the incumbent; (went live, why)."""
    better, why = is_better(card, incumbent_card(models_dir, test))
    if better:
        set_live(models_dir, card["name"])
    return better, why


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
