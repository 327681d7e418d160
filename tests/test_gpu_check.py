"""benchmarks/gpu_check.py --smoke: the prepared GPU check runs on CPU with a tiny config and writes sane JSON."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_check  # noqa: E402


def test_chip_peaks():
    assert gpu_check.chip_peak("NVIDIA H200") == pytest.approx(989e12)
    assert gpu_check.chip_peak("NVIDIA H100 80GB HBM3") == pytest.approx(989e12)
    assert gpu_check.chip_peak("NVIDIA H100 PCIe") == pytest.approx(756e12)
    assert gpu_check.chip_peak("NVIDIA A100-SXM4-80GB") == pytest.approx(312e12)
    assert gpu_check.chip_peak("NVIDIA A10G") == pytest.approx(70e12)
    assert gpu_check.chip_peak("Some Future GPU") is None


def test_smoke_run_writes_sane_json(tmp_path):
    r = gpu_check.main(["--out", str(tmp_path), "--smoke", "--no-compile", "--device", "cpu"])
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["stage1"] == r["stage1"] and saved["smoke"] is True
    s1 = r["stage1"]
    assert s1["batch"] in (8, 16) and s1["positions_per_s"] > 0 and s1["mfu"] is None  # no peak for a CPU
    assert s1["positions_per_step"] == s1["batch"] * 16
    assert s1["model_tflop_per_step"] == pytest.approx(gpu_check.model_flops(
        gpu_check.PixarConfig.from_yaml(gpu_check.preset_path("pixar-113m"), gpu_check.SMOKE_SETS), s1["params"],
        s1["batch"]) / 1e12)
    p = r["precision"]
    assert len(p["fp32"]) == len(p["bf16"]) == 20 and p["max_rel_diff"] < 0.02
    assert p["loss_drop_fp32"] > 0 and p["loss_drop_bf16"] > 0  # both train
    assert r["hf_llama"]["fp32_loss_abs_diff"] < 1e-5  # same weights, same loss
    g = r["generate"]
    assert g["same_output"] is True and g["kv_cache_positions_per_s"] > 0
    s2 = r["stage2"]
    assert s2["steps"] == 20 and s2["all_finite"] and all(math.isfinite(v) for v in s2["last"].values())
    text = (tmp_path / "gpu_check.txt").read_text()
    assert text.startswith("PIXAR GPU check on ") and "stage 2: 20 steps" in text and "KV cache" in text
