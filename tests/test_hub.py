"""Pixar.save_pretrained / from_pretrained / push_to_hub (huggingface_hub's mixin), offline on local folders."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from pixar.checkpoint.store import CheckpointError, save_checkpoint
from pixar.config import PixarConfig, RenderConfig
from pixar.config_io import from_dict
from pixar.model.official import convert_official
from pixar.model.transformer import Pixar, load_model

from official_reference import OfficialPixar

BENCH = [{"task": "lambada", "metric": "accuracy", "value": 0.123, "interval": "95% CI 0.11-0.13", "n": 5153,
          "protocol": "harness lambada, greedy first word, case-insensitive"}]


def tiny_cfg() -> PixarConfig:
    return from_dict(PixarConfig, {"name": "pixar-hub-test",
                                   "model": {"hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "max_positions": 10},
                                   "render": {"max_positions": 10, "eos_gap": 3, "text_x": 1},
                                   "train": {"steps": 77, "optim": {"lr": 1e-3}}})


def test_save_pretrained_round_trips_weights_config_and_card(tmp_path):
    cfg = tiny_cfg()
    model = Pixar(cfg.model, generator=torch.Generator().manual_seed(3))
    folder = tmp_path / "shared"
    model.save_pretrained(folder, config=cfg, model_card_kwargs={"training": {"steps": 77, "stage": 1}, "benchmarks": BENCH})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "meta.json", "model.safetensors"]
    loaded = Pixar.from_pretrained(str(folder))
    assert isinstance(loaded, Pixar) and not loaded.training
    assert loaded.pixar_config == cfg and loaded.pixar_config.render.eos_gap == 3  # render settings travel along
    assert from_dict(PixarConfig, json.loads((folder / "config.json").read_text())) == cfg
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert json.loads((folder / "meta.json").read_text())["step"] == 77
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: pixar-harness" in card
    for needle in ("# pixar-hub-test", f"| parameters | {model.num_params():,} |", "| hidden | 32 |",
                   "| eos_gap | 3 |", "- steps: 77", "| lambada | accuracy | 0.123 (95% CI 0.11-0.13), n=5153 | "
                   "harness lambada, greedy first word, case-insensitive |"):
        assert needle in card, needle
    # saving again over the folder replaces it as a whole; the loaded model keeps its config
    loaded.save_pretrained(folder)
    assert Pixar.from_pretrained(folder).pixar_config == cfg
    assert "No benchmark numbers were given" in (folder / "README.md").read_text()


def test_checkpoints_run_folders_and_convert_output_load_the_same_way(tmp_path):
    cfg = tiny_cfg()
    model = Pixar(cfg.model, generator=torch.Generator().manual_seed(4))
    save_checkpoint(tmp_path / "ckpt", model, cfg, meta={"step": 5})
    a = Pixar.from_pretrained(tmp_path / "ckpt")
    assert a.pixar_config == cfg and torch.equal(a.head.weight, model.head.weight)

    from transformers import LlamaConfig

    lc = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=4, rms_norm_eps=1e-6, vocab_size=8, max_position_embeddings=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = OfficialPixar(lc).eval()
    src = tmp_path / "official"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(lc.to_dict() | {"patch_size": 8, "patch_len": 2, "num_channel": 1}))
    save_file({k: v.contiguous() for k, v in ref.official_state_dict().items()}, str(src / "model.safetensors"))
    converted = convert_official(src, tmp_path / "converted", max_positions=12)
    via_hub = Pixar.from_pretrained(str(converted))
    direct, dcfg = load_model(converted)
    assert via_hub.pixar_config == dcfg and dcfg.render.max_positions == 12
    img = torch.randint(0, 2, (1, 8, 12 * 16), generator=torch.Generator().manual_seed(0)).float()
    with torch.no_grad():
        torch.testing.assert_close(via_hub(img)[0], direct(img)[0], rtol=0, atol=0)
    via_hub.save_pretrained(tmp_path / "reshared")  # and it can be re-shared with its config
    assert Pixar.from_pretrained(tmp_path / "reshared").pixar_config == dcfg


def test_push_to_hub_uploads_our_layout(tmp_path, monkeypatch):
    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            return type("Repo", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kw):
            uploaded["repo"] = repo_id
            uploaded["files"] = {p.name: p.read_bytes() for p in __import__("pathlib").Path(folder_path).iterdir()}
            return "https://example.invalid/commit"

    monkeypatch.setattr("huggingface_hub.hub_mixin.HfApi", FakeApi)
    cfg = tiny_cfg()
    model = Pixar(cfg.model, generator=torch.Generator().manual_seed(5))
    model.push_to_hub("someone/pixar-tiny", config=cfg, model_card_kwargs={"training": {"steps": 9}})
    assert uploaded["repo"] == "someone/pixar-tiny"
    assert sorted(uploaded["files"]) == ["README.md", "config.json", "meta.json", "model.safetensors"]
    assert from_dict(PixarConfig, json.loads(uploaded["files"]["config.json"])) == cfg
    assert b"- steps: 9" in uploaded["files"]["README.md"]


def test_hub_errors_are_one_line(tmp_path):
    cfg = tiny_cfg()
    model = Pixar(cfg.model)
    other = PixarConfig(model=from_dict(type(cfg.model), {"hidden": 64, "heads": 2, "layers": 2, "ffn": 64,
                                                          "max_positions": 10}), render=RenderConfig(max_positions=10))
    with pytest.raises(CheckpointError, match="does not match the model's"):
        model.save_pretrained(tmp_path / "bad", config=other)
    with pytest.raises(ValueError, match="has no 'protocol'"):
        model.save_pretrained(tmp_path / "bad2", model_card_kwargs={"benchmarks": [{"task": "x", "value": 1}]})
    assert not (tmp_path / "bad2").exists() or not any((tmp_path / "bad2").iterdir())
