"""The int8 path (pipeline/runtime/int8.py, onnx_runtime, fastest): built from the starter's
stored ranges, judged by its guard, never used when the guard rejects it, and on
real patches it never calibrated on its masks agree with fp32."""

from __future__ import annotations

import json
import platform
from dataclasses import replace
from pathlib import Path

import pytest

from psdwatch.daemon.models.live import prepare_named
from psdwatch.daemon.config import defaults, runtime_options
from psdwatch.pipeline import metrics
from psdwatch.pipeline import runtime
from psdwatch.pipeline.settings import RuntimeOptions
from psdwatch.pipeline.runtime import cpu, fastest, int8, onnx as onnx_runtime
from psdwatch.pipeline.runtime.models import load_model
from psdwatch.pipeline.train.data import find_annotations, load_example

from .conftest import DATA, REPO, warm_copy

MODELS = REPO / "models"
STARTER = (MODELS / "LIVE").read_text().strip()
# the runtime a model runs on for each path fastest.choose may pick (written out here, not
# read from the product: what the tests expect)
RUNTIME_OF_PATH = {"onnxruntime-fp32": "onnxruntime", "onnxruntime-int8": "onnxruntime-int8", "torch-bf16": "torch"}


@pytest.fixture(scope="module")
def models_copy(tmp_path_factory, warm_models):
    """The bundled models as the service prepared them (conftest.warm_models: the int8
    graph built from the starter's stored ranges and judged on this CPU, the paths timed),
    in a folder of this module's own."""
    return warm_copy(warm_models, tmp_path_factory.mktemp("int8") / "models")


def seg(**keys) -> RuntimeOptions:
    return replace(runtime_options(defaults()), **keys)


@pytest.mark.slow
def test_int8_masks_agree_with_fp32_on_real_patches_it_was_not_calibrated_on(models_copy):
    nets = {p: prepare_named(models_copy, STARTER, seg(precision=p, runtime="onnxruntime")) for p in ("fp32", "int8")}
    assert nets["int8"].runtime == "onnxruntime-int8" and nets["fp32"].runtime == "onnxruntime"
    verdict = int8.verdict(int8.graph_path(onnx_runtime.cached_graph(models_copy, nets['int8'].sha256)))
    assert verdict["accepted"] and verdict["iou_min"] >= int8.MIN_IOU
    assert "stored ranges" in verdict["calibration"]
    # 7-bit weights exactly where the CPU's int8 products saturate (x86 without VNNI)
    assert verdict["weights"] == ("7-bit (reduce_range)" if cpu.int8_kernels() == "avx2" else "8-bit")
    test = set(json.loads((MODELS / "test_set.json").read_text())["sha256"])
    patches = [e for e in (load_example(i, m) for i, m in find_annotations(DATA / "pt-alumina-haadf"))
               if e.sha256 in test]
    assert len(patches) >= 5
    for e in patches:
        a, b = (runtime.predict_probability(nets[p], e.data) > nets[p].threshold for p in ("fp32", "int8"))
        # 0.98 measured on the AMD EPYC (VNNI); 0.9745 on ptal_041 on an Intel Xeon with AMX,
        # whose int8 kernels onnxruntime picks differently: 0.97 holds on both
        assert metrics.scores(metrics.confusion(b, a))["iou"] >= 0.97, e.name


@pytest.mark.slow
def test_a_graph_the_guard_rejects_is_never_used(warm_models, tmp_path, monkeypatch, caplog):
    models_copy = warm_copy(warm_models, tmp_path / "models")
    monkeypatch.setattr(int8, "MIN_IOU", 1.01)  # no graph can pass
    cache = onnx_runtime.cache_dir(models_copy)
    for stale in cache.glob("*.int8.*"):
        stale.unlink()
    model = prepare_named(models_copy, STARTER, seg(precision="int8", runtime="onnxruntime"))
    assert model.runtime == "onnxruntime"  # fp32, and said so
    assert "failed its accuracy guard" in caplog.text
    verdict = int8.verdict(int8.graph_path(onnx_runtime.cached_graph(models_copy, model.sha256)))
    assert verdict is not None and not verdict["accepted"]
    monkeypatch.setattr(int8, "MIN_IOU", 0.98)  # the stored verdict stands: it is not rebuilt each start
    assert prepare_named(models_copy, STARTER, seg(precision="int8", runtime="onnxruntime")).runtime == "onnxruntime"


@pytest.mark.slow
def test_auto_measures_the_paths_once_and_keeps_the_fastest(models_copy):
    model = prepare_named(models_copy, STARTER, seg())
    cache = onnx_runtime.cached_graph(models_copy, model.sha256).with_suffix(".fastest.json")
    known = json.loads(cache.read_text())
    assert known["choice"] == min(known["times"], key=known["times"].get)
    assert {"onnxruntime-fp32", "onnxruntime-int8"} <= set(known["times"])
    assert ("torch-bf16" in known["times"]) == runtime.cpu_has_native_bf16()
    assert model.runtime == RUNTIME_OF_PATH[known["choice"]]
    known["times"] = {"onnxruntime-fp32": 0.001}
    known["choice"] = "onnxruntime-fp32"  # a cached verdict for this CPU is taken as it is
    cache.write_text(json.dumps(known))
    assert prepare_named(models_copy, STARTER, seg()).runtime == "onnxruntime"
    known["cpu"] = "another-cpu"  # another CPU measures again
    cache.write_text(json.dumps(known))
    fastest.choose(load_model(models_copy, STARTER), models_copy)
    assert json.loads(cache.read_text())["cpu"] == fastest.cpu_signature(0)


def test_the_int8_kernel_class_follows_the_cpu_flags_and_names_the_graph(tmp_path):
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    kernels = cpu.int8_kernels()
    if platform.machine().lower() in ("x86_64", "amd64") and flags:
        assert kernels == ("vnni" if any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
                           else "avx2")
        assert cpu.has_native_bf16() == any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
    # benchmark records name the chip by what decides its speed, not only "AMD EPYC"
    assert f"int8 kernels {kernels}" in cpu.describe()
    # a graph built for one class is never read as another's: its name says the class
    fp32 = tmp_path / "0123456789abcdef.onnx"
    names = {int8.graph_path(fp32, k).name for k in ("vnni", "avx2", "other")}
    assert len(names) == 3 and all(n.endswith(".int8.onnx") for n in names)
    assert int8.graph_path(fp32) == int8.graph_path(fp32, kernels)


def test_precision_int8_is_a_valid_setting_and_torch_runs_it_in_fp32():
    assert runtime.choose_precision("int8") == "fp32"
    with pytest.raises(ValueError, match="int8"):
        runtime.choose_precision("int4")


@pytest.mark.slow
def test_onnx_runtime_from_a_cached_graph_never_imports_torch(warm_models, tmp_path):
    """A one-shot `psdwatch process` paid 4 s of its 7 s start for torch and the network
    library; with the graph cached for these weights, ONNX Runtime needs neither."""
    import subprocess
    import sys

    from psdwatch.pipeline.runtime.torch_net import _nvidia_driver

    if _nvidia_driver():
        pytest.skip("with an NVIDIA driver, torch is asked whether it sees the GPU")
    models = warm_copy(warm_models, tmp_path / "models")
    config = tmp_path / "psdwatch.toml"
    config.write_text(f'[models]\ndir = "{models}"\n')
    probe = ("import sys; from psdwatch.daemon.config import load_config; "
             "from psdwatch.daemon.models.live import load_live_model; "
             f"m = load_live_model(load_config({str(config)!r}), 'auto'); print(m.runtime, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout.split()
    runtime, torch_imported = out[0], out[1] == "True"
    choice = json.loads(next(onnx_runtime.cache_dir(models).glob("*.fastest.json")).read_text())["choice"]
    # the path measured fastest here runs; where that is ONNX Runtime, torch never loads
    assert runtime == RUNTIME_OF_PATH[choice], out
    assert not (runtime.startswith("onnxruntime") and torch_imported), out
