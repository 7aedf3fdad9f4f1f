"""The data a model learns from and is checked on: annotated images found and
loaded, the fixed test set and the blocked split, the synthetic mix, the card's
record of what was used, and the d50 check on synthetic truth."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from ..runtime import models
from .. import runtime
from . import weak_masks
from ..io.files import write_atomic
from ..io.image import load_image

MASK_SUFFIXES = ("_mask.png", "_mask.tif", "_mask.tiff")


@dataclass
class Example:
    name: str
    sha256: str
    data: np.ndarray    # float32 grey values as read: what `process` gets
    mask: np.ndarray    # bool, True = particle
    # Boxes (x0, y0, x1, y1) where people boxed the particles: the mask is then made
    # from them, and scoring counts particles found in boxes (pipeline.metrics).
    boxes: np.ndarray | None = None
    _prepared: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def prepared(self, mode: str) -> np.ndarray:
        """The frame as a model with this input mode sees it (models.INPUT_MODES), made
        once per mode: training crops are cut from it. Scoring goes through
        runtime.predict_probability on `data`, so that any model, whatever its input,
        is scored as `process` runs it."""
        if mode not in self._prepared:
            self._prepared[mode] = runtime.normalise(self.data, mode=mode)
        return self._prepared[mode]

    @cached_property
    def centres(self) -> np.ndarray:
        """(y, x) of each particle, once per example: where particle-centred crops aim."""
        n, _, _, centroids = cv2.connectedComponentsWithStats(self.mask.astype(np.uint8), connectivity=8)
        return np.rint(centroids[1:, ::-1]).astype(int) if n > 1 else np.argwhere(self.mask)[:1]


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm4", ".dm3", ".emd")


def find_annotations(folder: Path) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs. An annotation is a mask beside the image
    (`<stem>_mask.png` or .tif, nonzero = particle: Fiji, napari, GIMP), else boxes:
    `<stem>.txt` in YOLO form beside it, or a COCO JSON in the folder that names the
    image (CVAT, Label Studio). A mask wins where an image has both."""
    folder = Path(folder)
    found: dict[Path, Path] = {}
    for mask in sorted(p for p in folder.rglob("*_mask.*") if p.name.endswith(MASK_SUFFIXES)):
        stem = mask.name[: mask.name.rindex("_mask")]
        candidates = [p for p in mask.parent.glob(f"{stem}.*") if p != mask and p.suffix.lower() in IMAGE_SUFFIXES]
        if candidates:
            found[sorted(candidates)[0]] = mask
    for label in sorted(folder.rglob("*.txt")):
        candidates = [p for p in label.parent.glob(f"{label.stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES]
        if candidates and sorted(candidates)[0] not in found:
            found[sorted(candidates)[0]] = label
    for coco in sorted(folder.rglob("*.json")):
        for name in weak_masks.coco_image_names(coco):
            image = coco.parent / name
            if image.is_file() and image not in found:
                found[image] = coco
    return sorted(found.items())


def load_example(image_path: Path, annotation_path: Path) -> Example:
    """An image and its particle mask: the mask file's, or made from boxes inside each
    box (pipeline.weak_masks), with the boxes kept for scoring detection."""
    loaded = load_image(image_path)
    shape = loaded.data.shape
    boxes = None
    suffix = Path(annotation_path).suffix.lower()
    if suffix == ".txt":
        boxes = weak_masks.read_yolo_boxes(annotation_path, shape)
    elif suffix == ".json":
        boxes = weak_masks.read_coco_boxes(annotation_path, Path(image_path).name)
        if boxes is None:
            raise ValueError(f"{Path(annotation_path).name} has no boxes for {Path(image_path).name}")
    if boxes is not None:
        mask = weak_masks.mask_from_boxes(loaded.data, boxes)
    else:
        raw = cv2.imread(str(annotation_path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"cannot read mask {annotation_path}")
        mask = (raw if raw.ndim == 2 else raw[..., 0]) > 0
        if mask.shape != shape:
            raise ValueError(f"mask {Path(annotation_path).name} is {mask.shape}, image is {shape}")
    digest = hashlib.sha256(Path(image_path).read_bytes() + Path(annotation_path).read_bytes()).hexdigest()
    return Example(Path(image_path).stem, digest, np.asarray(loaded.data, np.float32), mask, boxes)


MIN_SERIES_FOR_TEST = 3  # a series with fewer images keeps them all for training


def fixed_test_set(models_dir: Path, examples: list[Example], fraction: float = 0.2) -> set[str]:
    """The hashes of the test set, kept in the models dir: every model is scored on the
    same images, so a new one can be compared with the live one.

    Per acquisition series: the first time a series has MIN_SERIES_FOR_TEST images, its
    last block in name order (a fifth, at least one) joins the test set, and stays; its
    later images join training, never the test set. By series, so that a lab's own
    catalysts are judged on their own images, not on the Pt/alumina patches alone; a
    block, not a random draw, because neighbouring images (slices of one tomogram,
    frames of one session) are near copies."""
    path = Path(models_dir) / "test_set.json"
    kept = json.loads(path.read_text()) if path.is_file() else {"names": [], "sha256": []}
    hashes = set(kept["sha256"])
    groups: dict[str, list[Example]] = {}
    for example in sorted(examples, key=lambda e: e.name):
        groups.setdefault(series(example.name), []).append(example)
    tested = {series(name) for name in kept["names"]}
    added = False
    for name, members in groups.items():
        if name in tested or len(members) < MIN_SERIES_FOR_TEST or any(e.sha256 in hashes for e in members):
            continue
        for example in members[len(members) - max(1, round(len(members) * fraction)):]:
            kept["names"].append(example.name)
            kept["sha256"].append(example.sha256)
            hashes.add(example.sha256)
        added = True
    if added:
        Path(models_dir).mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(kept, indent=1).encode())
    return hashes


def series(name: str) -> str:
    """The acquisition series an image belongs to: its name up to the first '_' or
    digit ("ptal_012" -> "ptal", "cat_PtW2" -> "cat", "sampleA-3" -> "sampleA-")."""
    return re.split(r"[_\d]", name, maxsplit=1)[0]


def split(examples: list[Example], val_fraction: float) -> tuple[list[Example], list[Example]]:
    """Train/validation as contiguous blocks in name order, for the same reason
    as the test set: early stopping on near copies of training images stops late.
    The last block of each series goes to validation, so that early stopping
    weighs every kind of image it trains on (Pt/alumina patches and catalysts
    alike), not only the series that sorts last."""
    groups: dict[str, list[Example]] = {}
    for example in sorted(examples, key=lambda e: e.name):
        groups.setdefault(series(example.name), []).append(example)
    train, val = [], []
    for members in groups.values():
        n_val = round(len(members) * val_fraction) if len(members) > 2 else 0
        train += members[:len(members) - n_val]
        val += members[len(members) - n_val:]
    if not val and len(train) > 1:  # tiny sets: at least one image to stop on
        val, train = train[-1:], train[:-1]
    return train, val


def dataset_card(examples: list[Example], kind: str) -> dict:
    return {"kind": kind, "count": len(examples), "sha256": sorted(e.sha256 for e in examples),
            "particle_fraction": float(np.mean([e.mask.mean() for e in examples])) if examples else 0.0,
            "particle_diameter_px": particle_diameters([e.mask for e in examples])}


def particle_diameters(masks: list[np.ndarray]) -> dict | None:
    """d10/d50/d90 of the equivalent diameters (px) of the particles the model learnt
    from: size-aware segmentation (pipeline.size) shrinks frames towards these sizes."""
    areas = np.concatenate([cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)[2][1:, 4]
                            for m in masks] or [np.zeros(0)])
    if not areas.size:
        return None
    d10, d50, d90 = np.percentile(np.sqrt(4 * areas / np.pi), (10, 50, 90))
    return {"n": int(areas.size), "d10": round(float(d10), 1), "d50": round(float(d50), 1),
            "d90": round(float(d90), 1)}


def synthetic_examples(count: int, size: int = 512, seed: int = 1) -> list[Example]:
    """Synthetic images with exact masks, to mix into training: the domain the real
    set lacks. Dark carbon (saturated cores), textured alumina and thick bright
    oxide supports in turn; particle medians log-uniform from 4 to 40 px (size-aware
    segmentation shrinks larger ones into this range); 8 and 16 bit; a third of
    them through JPEG at quality 60-90, as figures are exported."""
    from ..synth import BACKGROUNDS, STYLES, SynthSpec, synth_image

    out = []
    for i in range(count):
        rng = np.random.default_rng(seed * 7919 + i)
        spec = SynthSpec(size=size, bits=(8, 16)[i % 2], style=STYLES[i % 4], seed=seed * 7919 + i,
                         background=BACKGROUNDS[i % len(BACKGROUNDS)],
                         d_median_px=float(np.exp(rng.uniform(np.log(4), np.log(40)))),
                         coverage=float(rng.uniform(0.02, 0.1)))
        image, mask, _ = synth_image(spec)
        if i % 3 == 2:
            eight = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
            ok, jpeg = cv2.imencode(".jpg", eight, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 91))])
            image = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        out.append(Example(f"synth_{seed}_{i}", digest, image.astype(np.float32), mask))
    return out


def synthetic_d50_error(model: models.Model, count: int = 4, size: int = 1024, seed: int = 9000) -> dict:
    """The d50 error of the whole method with this model on synthetic images it
    never saw (seeds apart from the training mix), sized with the true scale so
    the figure is the segmentation's alone. IoU says how pixels agree; this says
    whether the number a user reads off the report is right."""
    import tempfile

    from ..measure import psd
    from ..analyse import Settings, analyse_image
    from ..synth import STYLES, SynthSpec, synth_image, write_example

    errors = []
    settings = Settings(engine="unet", precision="fp32", bootstrap=0)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            image, mask, truth = synth_image(SynthSpec(size=size, bits=(8, 16)[i % 2],
                                                       style=STYLES[i % len(STYLES)], seed=seed + i))
            path = write_example(Path(tmp), f"check_{i}", image, mask, truth)
            analysis = analyse_image(path, settings, model)
            found = [p["ecd_px"] * truth["nm_per_px"] for p in analysis.particles]
            true_d50 = psd.summarise([p["ecd_nm"] for p in truth["particles"]], bootstrap=0)["d50"]
            if found and true_d50:
                errors.append(psd.summarise(found, bootstrap=0)["d50"] / true_d50 - 1)
    if not errors:
        return {"images": count, "measured": 0}
    return {"images": count, "measured": len(errors), "median_abs": float(np.median(np.abs(errors))),
            "max_abs": float(np.max(np.abs(errors))), "errors": [round(e, 4) for e in errors]}


def by_series(examples: list[Example]) -> list[list[Example]]:
    """The examples grouped by acquisition series (train_data.series), in a fixed order."""
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(series(example.name), []).append(example)
    return [groups[k] for k in sorted(groups)]
