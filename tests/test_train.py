"""Training plumbing on the real patches, kept tiny: weights change, the card is
valid, the fixed test set is fixed, a worse model is not promoted, a run resumes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from psdwatch.daemon.models import live as live_model, promotion
from psdwatch.pipeline.runtime import models
from psdwatch.pipeline.train import loop as train, data as train_data, scoring

pytestmark = pytest.mark.slow  # real processes or training: `pytest -m 'not slow'` skips them

TINY = train.TrainOptions(crop=64, batch=2, max_epochs=1, steps_per_epoch=2, patience=5,
                          precision="fp32", lr=1e-3, final_fit_max_epochs=1, synthetic_check_images=1)
# The same without the int8 activation ranges (20-25 s of each tiny training on a 2-core
# CPU) and the d50 check on a synthetic 1024² frame (8 s), for the tests that judge the
# plumbing, not those figures (test_a_few_steps... judges both).
TINY_PLUMBING = dataclasses.replace(TINY, int8_ranges=False, synthetic_check_images=0)


@pytest.fixture(scope="module")
def examples(data_dir):
    pairs = train_data.find_annotations(data_dir / "pt-alumina-haadf")
    assert len(pairs) == 45 and all(m.name.endswith("_mask.png") for _, m in pairs)
    return [train_data.load_example(image, mask) for image, mask in pairs[8:13]]


def test_a_few_steps_change_the_weights_and_write_a_valid_card(examples, tmp_path):
    before = {k: v.clone() for k, v in models.build_unet().state_dict().items()}
    torch.manual_seed(0)
    card, live, why = promotion.train_and_promote(examples, tmp_path, TINY, name="tiny-1", progress=lambda _: None)
    # Two steps of training cannot beat the classical engine, which is what runs without a model.
    assert not live and "of classical" in why and live_model.live_model_name(tmp_path) is None
    model = models.load_model(tmp_path, "tiny-1")
    after = model.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    saved = json.loads((tmp_path / "tiny-1.json").read_text())
    assert saved["weights_sha256"] == model.sha256
    assert set(saved["test_metrics"]) == {"iou", "ppv", "npv"}
    assert saved["data"]["test"]["count"] == 1 and saved["data"]["train"]["count"] == 3
    assert saved["data"]["validation"]["count"] == 1
    # The study's final fit on train + validation ran, and the d50 check measured.
    assert saved["final_fit"]["epochs"] == 1 and saved["final_fit"]["target_loss"] > 0
    assert saved["synthetic_d50_error"]["images"] == 1 and saved["initial_weights"] == "random"
    d50 = saved["synthetic_d50_error"]
    assert d50["measured"] in (0, 1)  # two steps of training may find no particle at all
    if d50["measured"]:
        assert d50["max_abs"] == d50["median_abs"] == pytest.approx(abs(d50["errors"][0]), abs=1e-4)
    test_set = json.loads((tmp_path / "test_set.json").read_text())
    assert test_set["names"] == [examples[-1].name]  # the last block in name order
    assert not (tmp_path / "checkpoints" / "tiny-1.safetensors").exists()
    # The int8 graph's activation ranges, from this training's own images (numbers, not images).
    ranges = json.loads((tmp_path / "tiny-1.int8-ranges").read_text())
    assert "Percentile" in str(ranges["calibration_method"]) and len(ranges["data"]) > 50  # one range per tensor


def test_the_promotion_rule():
    live = {"test_set": "t", "test_metrics": {"iou": 0.7, "ppv": 0.8}}
    assert promotion.is_better({"test_set": "t", "test_metrics": {"iou": 0.75, "ppv": 0.8}}, live)[0]
    assert not promotion.is_better({"test_set": "t", "test_metrics": {"iou": 0.69, "ppv": 0.9}}, live)[0]
    worse_ppv = promotion.is_better({"test_set": "t", "test_metrics": {"iou": 0.8, "ppv": 0.7}}, live)
    assert not worse_ppv[0] and "PPV" in worse_ppv[1]
    assert promotion.is_better({"test_set": "t", "test_metrics": {"iou": 0.5, "ppv": 0.5}}, None)[0]
    assert not promotion.is_better({"test_set": "other", "test_metrics": {"iou": 0.9, "ppv": 0.9}}, live)[0]


def test_a_worse_model_is_kept_but_not_live(examples, tmp_path):
    promotion.train_and_promote(examples, tmp_path, TINY_PLUMBING, name="first", progress=lambda _: None)
    card = models.load_card(tmp_path, "first")
    card["test_metrics"] = {"iou": 1.0, "ppv": 1.0, "npv": 1.0}  # a live model nothing can beat
    card["test_metrics_by_series"] = {k: {**v, "score": 1.0} for k, v in card["test_metrics_by_series"].items()}
    (tmp_path / "first.json").write_text(json.dumps(card))
    live_model.set_live(tmp_path, "first")
    _, live, why = promotion.train_and_promote(examples, tmp_path, TINY_PLUMBING, name="second",
                                               progress=lambda _: None)
    assert not live and "worse beyond noise on ptal" in why
    assert live_model.live_model_name(tmp_path) == "first"
    assert (tmp_path / "second.safetensors").is_file()
    assert not (tmp_path / "second.int8-ranges").exists()  # int8_ranges=False: none stored


def test_checkpoint_round_trip_without_pickle(tmp_path):
    net = models.build_unet()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(1, 1, 64, 64)).mean().backward()
    optimizer.step()
    path = tmp_path / "ck.safetensors"
    train.save_checkpoint(path, net, optimizer, {"epoch": 3, "history": {}})
    other = models.build_unet()
    other_opt = torch.optim.Adam(other.parameters(), lr=1e-3)
    state = train.load_checkpoint(path, other, other_opt)
    assert state["epoch"] == 3
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    assert other_opt.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


def test_training_can_start_from_a_saved_model(examples, tmp_path):
    with pytest.raises(FileNotFoundError, match="no live model"):
        live_model.resolve_init(tmp_path, "live")
    start = models.build_unet()
    weights = models.save_model(start, tmp_path, "start", {"date": "2026-01-01"})
    live_model.set_live(tmp_path, "start")
    assert models.resolve_weights(tmp_path, live_model.resolve_init(tmp_path, "live")) == weights
    assert models.resolve_weights(tmp_path, "start") == weights
    assert models.resolve_weights(tmp_path, str(weights)) == weights
    options = dataclasses.replace(TINY_PLUMBING, final_fit=False)
    card, _, _ = promotion.train_and_promote(examples, tmp_path, options, name="tuned",
                                             progress=lambda _: None, init="live")
    assert card["initial_weights"].startswith("start.safetensors sha256 ")
    tuned = models.load_model(tmp_path, "tuned").net.state_dict()
    original = dict(start.named_parameters())  # weights, not the batch-norm statistics
    changed = [k for k in original if not torch.equal(original[k], tuned[k])]
    # Two Adam steps at lr 1e-3 from the saved weights move each weight by about
    # 2e-3; a fresh random start would differ by far more.
    assert changed
    drift = max(float((original[k].detach() - tuned[k]).abs().max()) for k in changed)
    assert drift < 0.05


def test_a_live_model_scored_on_another_test_set_is_rescored_before_comparing(examples, tmp_path):
    net = models.build_unet()
    models.save_model(net, tmp_path, "starter", {"test_set": "elsewhere", "test_metrics": {"iou": 0.99, "ppv": 0.99}})
    live_model.set_live(tmp_path, "starter")
    test = examples[-1:]
    card = promotion.incumbent_card(tmp_path, test)
    # Its card's 0.99 was on other images; on these a random network scores what it scores.
    assert card["test_set"] == train.test_set_id(test) and card["test_metrics"]["iou"] < 0.5
    assert card["name"] == "starter"


def test_a_model_trained_on_flattened_frames_says_so_and_is_run_so(examples, tmp_path):
    options = dataclasses.replace(TINY_PLUMBING, input_mode="flattened", final_fit=False)
    card, _, _ = promotion.train_and_promote(examples, tmp_path, options, name="flat-1", progress=lambda _: None)
    assert card["input"] == "flattened" and json.loads((tmp_path / "flat-1.json").read_text())["input"] == "flattened"
    model = models.load_model(tmp_path, "flat-1")
    assert model.input_mode == "flattened"
    # Scored as process runs it: the raw frame in, flattened on the way.
    assert 0.0 <= scoring.evaluate(model, examples[:1])["iou"] <= 1.0
    assert examples[0].prepared("flattened") is examples[0].prepared("flattened")  # made once
    assert not np.allclose(examples[0].prepared("flattened"), examples[0].prepared("plain"))
