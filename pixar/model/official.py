"""Import official PIXAR checkpoints (april-tools/pixar, `LlamaForPatchCausalInference`) into our format.

The official backbone is an HF `LlamaModel` subclass saved with `save_pretrained`:

    config.json                  LlamaConfig (+ patch_size, patch_len, num_channel)
    model.safetensors | pytorch_model.bin
        in_proj.weight           Conv2d(1, C, (8, 16), stride 16)            [C, 1, 8, 16]
        layers.{i}.self_attn.{q,k,v,o}_proj.weight, layers.{i}.mlp.{gate,up,down}_proj.weight
        layers.{i}.input_layernorm.weight, layers.{i}.post_attention_layernorm.weight, norm.weight
        out_proj.weight          ConvTranspose2d(C, 1, (8, 16), stride 16)   [C, 1, 8, 16]

Conv2d over an 8-px strip with kernel = stride = one position is a linear map of each position's 128
pixels flattened row-major, so `embed.weight = in_proj.weight.reshape(C, 128)`; the transposed conv
writes `out[h, 16t + w] = sum_c W[c, 0, h, w] * hidden[c, t]`, so `head.weight = out_proj.reshape(C, 128).T`.

`pytorch_model.bin` files are read with `torch.load(weights_only=True)` (PyTorch's restricted
unpickler: tensors and plain containers only, no code execution); safetensors is preferred.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from pixar.checkpoint.store import CheckpointError, _load_tensors, read_json, save_checkpoint
from pixar.config import ModelConfig, PixarConfig, RenderConfig
from pixar.config_io import ConfigError
from pixar.model.transformer import Pixar


def _read_weights(src: Path) -> dict[str, torch.Tensor]:
    st, bins = src / "model.safetensors", src / "pytorch_model.bin"
    files = [st] if st.is_file() else sorted(src.glob("model-*.safetensors"))
    if files:
        out = {}
        for s in files:
            out.update(_load_tensors(s))
        return out
    if bins.is_file():
        try:
            weights = torch.load(bins, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, OSError, AttributeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else "empty or truncated file"
            raise CheckpointError(f"{bins}: corrupt or unreadable weights ({type(e).__name__}: {msg[:160]})") from None
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise CheckpointError(f"{bins}: not a state dict of tensors")
        return weights
    raise CheckpointError(f"{src}: no model.safetensors or pytorch_model.bin (not an official PIXAR backbone)")


def model_config_from_llama(cfg: dict, max_positions: int) -> ModelConfig:
    try:
        return ModelConfig(hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"], heads=cfg["num_attention_heads"],
                           ffn=cfg["intermediate_size"], patch_size=cfg.get("patch_size", 8),
                           patch_len=cfg.get("patch_len", 2), max_positions=max_positions,
                           rope_theta=float(cfg.get("rope_theta", 10000.0)), norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
                           init_std=float(cfg.get("initializer_range", 0.02)))
    except KeyError as e:
        raise CheckpointError(f"config.json lacks {e.args[0]!r}") from None


def official_to_pixar(weights: dict[str, torch.Tensor], mcfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Rename + reshape an official state dict into `Pixar`'s."""
    C, D = mcfg.hidden, mcfg.pixels_per_position
    w = {k.removeprefix("backbone.").removeprefix("model."): v for k, v in weights.items()}
    out = {"embed.weight": w["in_proj.weight"].reshape(C, D), "head.weight": w["out_proj.weight"].reshape(C, D).T.contiguous(),
           "norm.weight": w["norm.weight"]}
    for i in range(mcfg.layers):
        p = f"layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[f"blocks.{i}.attn.{n}.weight"] = w[p + f"self_attn.{n}.weight"]
        for n in ("gate_proj", "up_proj", "down_proj"):
            out[f"blocks.{i}.mlp.{n}.weight"] = w[p + f"mlp.{n}.weight"]
        out[f"blocks.{i}.attn_norm.weight"] = w[p + "input_layernorm.weight"]
        out[f"blocks.{i}.mlp_norm.weight"] = w[p + "post_attention_layernorm.weight"]
    return out


def convert_official(src: str | Path, out: str | Path, max_positions: int = 360) -> Path:
    src = Path(src)
    cfg_file = src / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{src}: missing config.json (expected an official PIXAR backbone folder)")
    llama_cfg = read_json(cfg_file)
    if not isinstance(llama_cfg, dict):
        raise CheckpointError(f"{cfg_file}: expected a JSON object (an HF LlamaConfig)")
    if llama_cfg.get("num_key_value_heads", llama_cfg.get("num_attention_heads")) != llama_cfg.get("num_attention_heads"):
        raise CheckpointError(f"{cfg_file}: grouped-query attention (num_key_value_heads) is not supported")
    try:
        mcfg = model_config_from_llama(llama_cfg, max_positions)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{cfg_file}: {e}") from None
    weights = _read_weights(src)
    try:
        state = official_to_pixar(weights, mcfg)
    except KeyError as e:
        raise CheckpointError(f"{src}: weight {e.args[0]!r} missing (not an official PIXAR backbone?)") from None
    except RuntimeError as e:  # a reshape to the config's sizes failed
        raise CheckpointError(f"{src}: weights do not match {cfg_file} ({str(e).splitlines()[0]})") from None
    with torch.device("meta"):  # compare shapes before allocating the model the config describes
        want = {k: tuple(v.shape) for k, v in Pixar(mcfg).state_dict().items()}
    bad = sorted(k for k in want if k not in state or tuple(state[k].shape) != want[k])
    if bad:
        have = list(state[bad[0]].shape) if bad[0] in state else "missing"
        raise CheckpointError(f"{src}: weights do not match {cfg_file} ({bad[0]}: {have}, the config says {list(want[bad[0]])})")
    model = Pixar(mcfg)
    model.load_state_dict(state, strict=True)
    cfg = PixarConfig(name=f"official-{src.name}", model=mcfg,
                      render=RenderConfig(patch_size=mcfg.patch_size, patch_len=mcfg.patch_len, max_positions=max_positions))
    return save_checkpoint(out, model, cfg, meta={"converted_from": str(src.resolve())})
