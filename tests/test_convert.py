"""`pixar convert`: a synthetic checkpoint laid out the official way gives the reference build's logits."""
import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from pixar.checkpoint.store import CheckpointError
from pixar.model.official import convert_official
from pixar.model.transformer import load_model, patchify

from official_reference import OfficialPixar


def _official_dir(tmp_path):
    from transformers import LlamaConfig

    torch.manual_seed(0)
    lc = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=4, rms_norm_eps=1e-6, vocab_size=8, max_position_embeddings=64)
    ref = OfficialPixar(lc).eval()
    src = tmp_path / "official"
    src.mkdir()
    cfg = lc.to_dict() | {"patch_size": 8, "patch_len": 2, "num_channel": 1}
    (src / "config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in ref.official_state_dict().items()}, str(src / "model.safetensors"))
    return ref, src


def test_converted_logits_equal_reference(tmp_path):
    ref, src = _official_dir(tmp_path)
    out = convert_official(src, tmp_path / "ours", max_positions=20)
    ours, cfg = load_model(out)
    assert cfg.model.hidden == 32 and cfg.model.layers == 2 and cfg.render.max_positions == 20
    img = torch.randint(0, 2, (2, 1, 8, 20 * 16)).float()
    with torch.no_grad():
        want = patchify(ref(img)[:, 0], 16)  # [B, T, 128]
        got, _ = ours(img[:, 0])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_convert_cli_and_errors(tmp_path):
    from harness.app import main

    _, src = _official_dir(tmp_path)
    res = CliRunner().invoke(main, ["convert", str(src), "-o", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c" / "model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="missing config.json"):
        convert_official(tmp_path / "nothing", tmp_path / "x")
    (src / "model.safetensors").unlink()
    res = CliRunner().invoke(main, ["convert", str(src), "-o", str(tmp_path / "d")])
    assert res.exit_code != 0 and "no model.safetensors" in res.output
