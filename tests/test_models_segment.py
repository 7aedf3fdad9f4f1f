"""The U-Net plumbing: safetensors files, the LIVE pointer, tiled inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from psdwatch.daemon.models import live as live_model
from psdwatch.pipeline.runtime import models
from psdwatch.pipeline import runtime


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    models.save_model(models.build_unet(), path, "random-0", {"date": "2026-11-25"})
    return path


def test_saved_model_is_safetensors_and_loads_back(model_dir):
    raw = (model_dir / "random-0.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])  # safetensors: a JSON header, no pickle
    assert any(k.startswith("encoder.") for k in header)
    card = json.loads((model_dir / "random-0.json").read_text())
    assert card["architecture"].startswith("Unet(tu-seresnet34")
    model = models.load_model(model_dir, "random-0")
    assert model.sha256 == card["weights_sha256"]
    original = models.build_unet()
    assert set(model.net.state_dict()) == set(original.state_dict())


def test_live_pointer_switches_atomically(model_dir):
    assert live_model.live_model_name(model_dir) is None
    live_model.set_live(model_dir, "random-0")
    assert live_model.live_model_name(model_dir) == "random-0"
    assert [c["name"] for c in live_model.list_models(model_dir) if c["live"]] == ["random-0"]
    with pytest.raises(FileNotFoundError):
        live_model.set_live(model_dir, "missing")
    assert live_model.live_model_name(model_dir) == "random-0"
    (model_dir / "LIVE").unlink()


def test_tiled_prediction_covers_any_size_and_matches_one_tile(model_dir):
    model = runtime.prepare_model(models.load_model(model_dir, "random-0"))
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (200, 230)).astype(np.float32)
    whole = runtime.predict_probability(model, image, tile=256, overlap=32)
    assert whole.shape == image.shape and 0 <= whole.min() and whole.max() <= 1
    # One tile covering the padded image: the same as running the network directly.
    x = runtime.normalise(image)
    padded = np.pad(x, ((0, 24), (0, 26)), mode="reflect")
    with torch.inference_mode():
        direct = torch.sigmoid(model.net(torch.from_numpy(padded)[None, None]))[0, 0].numpy()
    assert np.allclose(whole, direct[:200, :230], atol=1e-4)
    tiled = runtime.predict_probability(model, image, tile=128, overlap=32)
    assert tiled.shape == image.shape


def test_precision_choice_never_picks_emulated_bf16():
    chosen = runtime.choose_precision("auto")
    assert chosen == ("bf16" if runtime.cpu_has_native_bf16() else "fp32")
    assert runtime.choose_precision("fp32") == "fp32"
    with pytest.raises(ValueError):
        runtime.choose_precision("fp8")


def test_normalise_ignores_excluded_pixels():
    image = np.full((64, 64), 100.0)
    image[::2] += 10
    exclude = np.zeros_like(image, bool)
    exclude[-8:] = True
    image[-8:] = 65535  # a white scale bar band
    x = runtime.normalise(image, exclude)
    assert x[:56].max() <= 1.01 and x[:56].min() >= -0.01


@pytest.mark.slow
def test_onnx_runtime_gives_the_same_particles_as_pytorch(model_dir, tmp_path):
    from psdwatch.pipeline.measure import particles as measure
    from psdwatch.pipeline.runtime import onnx as onnx_runtime
    from psdwatch.pipeline.synth import SynthSpec, synth_image

    image, _, _ = synth_image(SynthSpec(size=384, bits=16, style="band", seed=4))
    plain = runtime.prepare_model(models.load_model(model_dir, "random-0"), runtime="torch")
    fast = runtime.prepare_model(models.load_model(model_dir, "random-0"), runtime="onnxruntime",
                                 models_dir=tmp_path)
    assert plain.runner is None and fast.runner is not None
    cached = list((tmp_path / ".onnx-cache").glob("*.onnx"))
    assert [p.stem for p in cached] == [fast.sha256[:16]]  # exported once, keyed by the weights
    a = runtime.predict_probability(plain, image.astype(np.float32), tile=256, overlap=32)
    b = runtime.predict_probability(fast, image.astype(np.float32), tile=256, overlap=32)
    assert np.abs(a - b).max() < 1e-4
    # A random network's "particles" are blobs, but the same blobs either way.
    threshold = float(np.median(a))
    particles = [measure.measure_particles(measure.label_particles(p > threshold), image, 0.2) for p in (a, b)]
    assert len(particles[0]) > 0
    assert [q["area_px"] for q in particles[0]] == [q["area_px"] for q in particles[1]]
    assert onnx_runtime.choose_runtime("auto", "bf16") == "torch"
    assert onnx_runtime.choose_runtime("auto", "fp32") == "onnxruntime"
    with pytest.raises(ValueError, match="runtime must be one of"):
        onnx_runtime.choose_runtime("tensorrt", "fp32")


@pytest.mark.parametrize("length, max_tile, overlap, want", [
    (2048, 512, 64, (480, 5)), (2048, 768, 32, (704, 3)), (512, 512, 64, (512, 1)),
    (100, 512, 64, (128, 1)), (4096, 768, 32, (736, 6))])
def test_tiles_are_sized_to_the_frame(length, max_tile, overlap, want):
    tile, starts = runtime.plan_tiles(length, max_tile, overlap)
    assert (tile, len(starts)) == want
    assert tile % 32 == 0 and starts[0] == 0 and starts[-1] + tile >= length
    assert all(a + tile - b >= overlap for a, b in zip(starts, starts[1:]))  # seams blend
