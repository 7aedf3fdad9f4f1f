"""Boxes are annotations too (YOLO .txt beside an image, COCO JSON in the folder), the
test set is kept per series, and promotion judges every series apart: on the real
boxed catalyst frames and Pt/alumina patches of ../shared/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from psdwatch.daemon.models import live as live_model, promotion
from psdwatch.pipeline.runtime import models
from psdwatch.pipeline.train import loop as train, data as train_data, scoring
from psdwatch.pipeline.train.weak_masks import read_coco_boxes, read_yolo_boxes

REPO = Path(__file__).resolve().parent.parent


def _coco_from_yolo(image: Path, label: Path, shape: tuple[int, int]) -> dict:
    boxes = read_yolo_boxes(label, shape)
    return {"images": [{"id": 7, "file_name": f"frames/{image.name}", "width": shape[1], "height": shape[0]}],
            "annotations": [{"id": i, "image_id": 7, "category_id": 1,
                             "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}
                            for i, (x0, y0, x1, y1) in enumerate(boxes)],
            "categories": [{"id": 1, "name": "particle"}]}


@pytest.fixture()
def mixed_folder(tmp_path: Path, data_dir: Path) -> Path:
    """Two Pt/alumina patches with masks, Cu1 with YOLO boxes, Cu3 in a COCO JSON,
    and a stray README.txt and unrelated JSON that must be ignored."""
    folder = tmp_path / "annotations"
    folder.mkdir()
    for stem in ("ptal_010", "ptal_011"):
        for suffix in (".tif", "_mask.png"):
            shutil.copy(data_dir / "pt-alumina-haadf" / f"{stem}{suffix}", folder)
    boxed = data_dir / "catalysts-boxed"
    shutil.copy(boxed / "images" / "Cu1.jpg", folder)
    shutil.copy(boxed / "labels" / "Cu1.txt", folder)
    shutil.copy(boxed / "images" / "Cu3.jpg", folder)
    coco = _coco_from_yolo(folder / "Cu3.jpg", boxed / "labels" / "Cu3.txt", (640, 640))
    (folder / "export.json").write_text(json.dumps(coco))
    (folder / "README.txt").write_text("notes, not boxes")
    (folder / "settings.json").write_text(json.dumps({"anything": 1}))
    return folder


def test_masks_yolo_and_coco_are_all_found_and_loaded(mixed_folder: Path, data_dir: Path):
    pairs = dict((image.name, label.name) for image, label in train_data.find_annotations(mixed_folder))
    assert pairs == {"ptal_010.tif": "ptal_010_mask.png", "ptal_011.tif": "ptal_011_mask.png",
                     "Cu1.jpg": "Cu1.txt", "Cu3.jpg": "export.json"}
    examples = {e.name: e for e in (train_data.load_example(i, a) for i, a in train_data.find_annotations(mixed_folder))}
    assert examples["ptal_010"].boxes is None
    for name in ("Cu1", "Cu3"):
        example = examples[name]
        truth = read_yolo_boxes(data_dir / "catalysts-boxed" / "labels" / f"{name}.txt", example.data.shape)
        assert example.boxes.shape == truth.shape
        np.testing.assert_allclose(example.boxes, truth, atol=1e-6)
        # the weak mask lies inside the boxes, and most boxes hold a particle of it
        inside = np.zeros(example.mask.shape, bool)
        for x0, y0, x1, y1 in example.boxes:
            inside[int(y0):int(np.ceil(y1)) + 1, int(x0):int(np.ceil(x1)) + 1] = True
        assert example.mask.any() and not (example.mask & ~inside).any()
        held = sum(example.mask[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))].any() for x0, y0, x1, y1 in example.boxes)
        assert held >= 0.8 * len(example.boxes)
        assert ndi.label(example.mask)[1] >= 0.5 * len(example.boxes)


def test_a_coco_file_without_the_image_says_so(tmp_path: Path, data_dir: Path):
    coco = tmp_path / "other.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.jpg"}], "annotations": []}))
    assert read_coco_boxes(coco, "Cu1.jpg") is None
    with pytest.raises(ValueError, match="no boxes for Cu1.jpg"):
        train_data.load_example(data_dir / "catalysts-boxed" / "images" / "Cu1.jpg", coco)


def test_each_series_gets_its_own_test_block_once(tmp_path: Path, data_dir: Path):
    patches = [train_data.load_example(i, m) for i, m in train_data.find_annotations(data_dir / "pt-alumina-haadf")[:5]]
    boxed = data_dir / "catalysts-boxed"
    cu = [train_data.load_example(boxed / "images" / f"{n}.jpg", boxed / "labels" / f"{n}.txt") for n in ("Cu1", "Cu3")]
    chosen = train_data.fixed_test_set(tmp_path, patches + cu)
    # the patches' last one; Cu has only two frames: both stay for training
    assert chosen == {patches[-1].sha256}
    cu.append(train_data.load_example(boxed / "images" / "Cu4.jpg", boxed / "labels" / "Cu4.txt"))
    more = [train_data.load_example(i, m) for i, m in train_data.find_annotations(data_dir / "pt-alumina-haadf")[5:9]]
    chosen = train_data.fixed_test_set(tmp_path, patches + more + cu)
    # a third Cu frame: Cu gets its test frame; the patches' test block does not move
    assert chosen == {patches[-1].sha256, cu[-1].sha256}
    assert json.loads((tmp_path / "test_set.json").read_text())["names"] == [patches[-1].name, "Cu4"]


def test_promotion_judges_every_series():
    live = {"name": "old", "test_set": "t", "test_metrics_by_series": {
        "ptal": {"score": 0.70, "n": 9}, "Cu": {"score": 0.30, "n": 2}}}
    gains_on_cu = {"test_set": "t", "test_metrics_by_series": {
        "ptal": {"score": 0.69, "n": 9}, "Cu": {"score": 0.60, "n": 2}}}
    better, why = promotion.is_better(gains_on_cu, live)
    assert better and "ptal 0.690 vs 0.700" in why and "Cu 0.600 vs 0.300" in why
    loses_ptal = {"test_set": "t", "test_metrics_by_series": {
        "ptal": {"score": 0.60, "n": 9}, "Cu": {"score": 0.90, "n": 2}}}
    better, why = promotion.is_better(loses_ptal, live)
    assert not better and why.startswith("worse beyond noise on ptal")
    same = {"test_set": "t", "test_metrics_by_series": live["test_metrics_by_series"]}
    assert not promotion.is_better(same, live)[0]


def test_boxed_series_are_scored_by_detection_with_the_live_model(data_dir: Path):
    boxed = data_dir / "catalysts-boxed"
    example = train_data.load_example(boxed / "images" / "Cu3.jpg", boxed / "labels" / "Cu3.txt")
    name = live_model.live_model_name(REPO / "models")
    model = models.load_model(REPO / "models", name)
    scores = scoring.score_by_series(model, [example])
    assert set(scores) == {"Cu"} and scores["Cu"]["score"] == scores["Cu"]["f1"]
    # the live model was trained on these boxes: it finds most of them
    assert scores["Cu"]["recall"] > 0.5 and scores["Cu"]["precision"] > 0.5


@pytest.mark.slow
def test_training_takes_boxes_and_cards_scores_per_series(mixed_folder: Path, data_dir: Path, tmp_path: Path):
    boxed = data_dir / "catalysts-boxed"
    shutil.copy(boxed / "images" / "Cu4.jpg", mixed_folder)
    shutil.copy(boxed / "labels" / "Cu4.txt", mixed_folder)
    for stem in ("ptal_012", "ptal_013"):
        for suffix in (".tif", "_mask.png"):
            shutil.copy(data_dir / "pt-alumina-haadf" / f"{stem}{suffix}", mixed_folder)
    examples = [train_data.load_example(i, a) for i, a in train_data.find_annotations(mixed_folder)]
    options = train.TrainOptions(crop=64, batch=2, max_epochs=1, steps_per_epoch=2, patience=5, precision="fp32",
                                 lr=1e-3, final_fit_max_epochs=1, synthetic_check_images=0, int8_ranges=False)
    models_dir = tmp_path / "models"
    card, _, why = promotion.train_and_promote(examples, models_dir, options, name="boxes-1", progress=lambda _: None)
    assert set(card["test_metrics_by_series"]) == {"ptal", "Cu"}
    assert "f1" in card["test_metrics_by_series"]["Cu"] and "iou" in card["test_metrics_by_series"]["ptal"]
    assert card["data"]["train"]["count"] + card["data"]["validation"]["count"] + card["data"]["test"]["count"] == 7
