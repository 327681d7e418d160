"""The scaling presets: exact parameter counts (formula computed here, independently of the model code;
models built on the `meta` device, so the 1.5B one costs no memory) and their same-budget GPT-2 partners."""
from __future__ import annotations

import pytest
import torch

from harness.models.gpt2_pretrain import GPT2BaselineConfig
from pixar.config import PixarConfig, preset_path
from pixar.model.transformer import Pixar

# name: (hidden, layers, heads) -- GPT-2 small/medium/large/XL shapes
SHAPES = {"pixar-113m": (768, 12, 12), "pixar-403m": (1024, 24, 16), "pixar-944m": (1280, 36, 20),
          "pixar-1.97b": (1600, 48, 25)}
EXPECTED = {"pixar-113m": 113_462_016, "pixar-403m": 402_965_504, "pixar-944m": 944_139_520,
            "pixar-1.97b": 1_966_644_800}
PIXELS = 8 * 8 * 2  # one 8 x 16 position


def pixar_params(h: int, layers: int, ffn: int) -> tuple[int, int]:
    """(total, non-embedding): per block q,k,v,o (4 h^2) + SwiGLU gate/up/down (3 h ffn) + 2 RMSNorm (2h);
    final RMSNorm h; pixel in/out projections 2 x 128 h (no biases anywhere)."""
    body = layers * (4 * h * h + 3 * h * ffn + 2 * h) + h
    return body + 2 * PIXELS * h, body


def gpt2_params(h: int, layers: int, inner: int, vocab: int, positions: int) -> tuple[int, int]:
    """(total, non-embedding) of a tied GPT-2: per block c_attn 3h^2+3h, c_proj h^2+h, 2 LayerNorms 4h,
    MLP h*inner+inner + inner*h+h; ln_f 2h; wte vocab*h, wpe positions*h."""
    body = layers * (4 * h * h + 4 * h + 4 * h + 2 * h * inner + inner + h) + 2 * h
    return body + vocab * h + positions * h, body


@pytest.mark.parametrize("name", list(SHAPES))
def test_preset_shapes_and_exact_parameter_counts(name):
    cfg = PixarConfig.from_yaml(preset_path(name))
    h, layers, heads = SHAPES[name]
    m = cfg.model
    assert (m.hidden, m.layers, m.heads, m.ffn) == (h, layers, heads, 4 * h) and m.head_dim == 64
    total, _ = pixar_params(h, layers, m.ffn)
    assert total == EXPECTED[name]
    size = name.split("-")[1]  # the name says what the preset holds: 113m, 403m, 944m, 1.97b
    assert round(total / {"m": 1e6, "b": 1e9}[size[-1]], len(size.split(".")[1]) - 1 if "." in size else 0) \
        == float(size[:-1]), (name, total)
    with torch.device("meta"):
        model = Pixar(m)
    assert model.num_params() == total and next(model.parameters()).is_meta
    # the paper's render and training settings, as in pixar-113m
    ref = PixarConfig.from_yaml(preset_path("pixar-113m"))
    assert cfg.render == ref.render and cfg.adv == ref.adv
    for key in ("batch_size", "steps", "max_chars", "optim"):
        assert getattr(cfg.train, key) == getattr(ref.train, key), key


@pytest.mark.parametrize("name", ["pixar-403m", "pixar-944m", "pixar-1.97b"])
def test_gpt2_partner_matches_non_embedding_params_and_data(name):
    from transformers import GPT2Config, GPT2LMHeadModel

    partner = GPT2BaselineConfig.from_yaml(preset_path(name.replace("pixar", "gpt2")))
    pix = PixarConfig.from_yaml(preset_path(name))
    g = partner.model
    assert partner.matched_to == name and (g.n_embd, g.n_layer, g.n_head) == SHAPES[name]
    vocab = 50257
    total, body = gpt2_params(g.n_embd, g.n_layer, g.n_inner, vocab, g.n_positions)
    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=g.n_embd, n_layer=g.n_layer, n_head=g.n_head,
                                           n_inner=g.n_inner, n_positions=g.n_positions))
    assert sum(p.numel() for p in model.parameters()) == total  # tied wte counted once
    _, pix_body = pixar_params(pix.model.hidden, pix.model.layers, pix.model.ffn)
    assert abs(body - pix_body) / pix_body < 1e-3
    for key in ("max_chars", "batch_size", "steps", "optim"):
        assert getattr(partner.train, key) == getattr(pix.train, key), key
