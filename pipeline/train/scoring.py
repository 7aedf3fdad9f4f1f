"""How good a model is, measured as `process` runs it: pixel IoU/PPV/NPV against masks,
detection precision/recall/F1 against boxes, per acquisition series, and the threshold
chosen on validation.
"""

from __future__ import annotations

import cv2
import numpy as np

from .. import metrics
from ..runtime import models
from .. import runtime
from .data import Example, by_series, series

def evaluate_by_series(model: models.Model, examples: list[Example], precision: str = "fp32") -> dict:
    """IoU, PPV and NPV as the mean over acquisition series of each series' pooled
    scores, with the per-series figures under "series". Pooled over all pixels, a few
    2048² catalyst frames outweigh a dozen 512² patches, and early stopping would
    follow whichever kind has the most pixels."""
    per = {series(group[0].name): evaluate(model, group, precision) for group in by_series(examples)}
    return {m: float(np.mean([s[m] for s in per.values()])) for m in ("iou", "ppv", "npv")} | {"series": per}


def evaluate(model: models.Model, examples: list[Example], precision: str = "fp32",
             threshold: float | None = None) -> dict:
    """Pixel IoU, PPV and NPV summed over whole images, as `process` would segment them
    (at the model's own threshold unless one is given)."""
    threshold = model.threshold if threshold is None else threshold
    total = np.zeros(4, np.int64)
    model.net.eval()
    for example in examples:
        prob = runtime.predict_probability(model, example.data, precision=precision)
        total += metrics.confusion(prob > threshold, example.mask)
    return metrics.scores(total)


def detection_scores(model: models.Model, examples: list[Example], precision: str = "fp32") -> dict:
    """Particles found against people's boxes: a component of the model's mask (6 px and
    more, not touching the frame's edge, whose particles people do not box) counts when
    its centroid lies in a box, one to one. Box-annotated images are scored so because a
    weak mask's edge is a guess, where a box's presence is not."""
    from scipy.optimize import linear_sum_assignment

    tp = found = boxed = 0
    model.net.eval()
    for example in examples:
        prob = runtime.predict_probability(model, example.data, precision=precision)
        n, labels, stats, centroids = cv2.connectedComponentsWithStats((prob > model.threshold).astype(np.uint8))
        h, w = labels.shape
        keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 6
                and stats[i, 0] > 0 and stats[i, 1] > 0 and stats[i, 0] + stats[i, 2] < w and stats[i, 1] + stats[i, 3] < h]
        cen, boxes = centroids[keep].reshape(-1, 2), example.boxes
        inside = ((cen[:, None, 0] >= boxes[None, :, 0]) & (cen[:, None, 0] <= boxes[None, :, 2])
                  & (cen[:, None, 1] >= boxes[None, :, 1]) & (cen[:, None, 1] <= boxes[None, :, 3]))
        if inside.size:
            rows, cols = linear_sum_assignment(-inside.astype(float))
            tp += int(inside[rows, cols].sum())
        found, boxed = found + len(cen), boxed + len(boxes)
    p, r = (tp / found if found else 1.0), (tp / boxed if boxed else 1.0)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def score_by_series(model: models.Model, examples: list[Example], precision: str = "fp32") -> dict:
    """Per acquisition series: its pooled pixel scores (masks) or detection scores
    (boxes), its image count, and "score", the one figure promotion compares: IoU for
    masks, F1 for boxes."""
    out = {}
    for group in by_series(examples):
        masks = [e for e in group if e.boxes is None]
        boxed = [e for e in group if e.boxes is not None]
        figures = evaluate(model, masks, precision) if masks else detection_scores(model, boxed, precision)
        out[series(group[0].name)] = {**figures, "n": len(group),
                                      "score": figures["iou"] if masks else figures["f1"]}
    return out


THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.2, 0.96, 0.05))  # to 0.95: a model trained on weak
# masks drawn wider than the particles chose 0.8, the top of a grid that ended there, its IoU still rising


def choose_threshold(model: models.Model, val: list[Example], precision: str = "fp32") -> tuple[float, dict]:
    """The probability threshold with the best validation IoU (the mean over series, as
    early stopping weighs them), and that IoU at each one.

    Chosen on validation, never on the test set: the card's test figures are then
    an honest measure of the model as `process` runs it."""
    if not val:
        return 0.5, {}
    model.net.eval()
    groups = [[(runtime.predict_probability(model, e.data, precision=precision), e.mask) for e in group]
              for group in by_series(val)]
    ious = {}
    for t in THRESHOLDS:
        per_series = []
        for group in groups:
            total = np.zeros(4, np.int64)
            for prob, mask in group:
                total += metrics.confusion(prob > t, mask)
            per_series.append(metrics.scores(total)["iou"])
        ious[t] = float(np.mean(per_series))
    return max(ious, key=lambda t: (ious[t], -abs(t - 0.5))), ious
