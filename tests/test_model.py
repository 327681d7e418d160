"""Model: paper parameter count, parity with transformers' LlamaModel, causality, loss, overfitting."""
import pytest
import torch

from pixar.config import ModelConfig, PixarConfig
from pixar.model.transformer import Pixar, masked_bce, patchify, unpatchify

TINY = ModelConfig(hidden=32, layers=2, heads=4, ffn=64, max_positions=16)


def test_paper_size_is_113_462_016_parameters():
    cfg = PixarConfig.from_yaml("configs/pixar-113m.yaml")
    with torch.device("meta"):
        model = Pixar(cfg.model)
    assert model.num_params() == 113_462_016


def test_patchify_round_trip_and_layout():
    x = torch.arange(2 * 8 * 64, dtype=torch.float32).reshape(2, 8, 64)
    p = patchify(x, 16)
    assert p.shape == (2, 4, 128)
    assert torch.equal(p[0, 1].reshape(8, 16), x[0, :, 16:32])  # row-major (h, w) = Conv2d kernel layout
    assert torch.equal(unpatchify(p, 8), x)


def test_parity_with_hf_llama():
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    hf_cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=64,
                         vocab_size=8, attention_bias=False, mlp_bias=False)
    hf = LlamaModel(hf_cfg).eval()
    ours = Pixar(TINY).eval()
    sd = {"norm.weight": hf.norm.weight}
    for i, layer in enumerate(hf.layers):
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[f"blocks.{i}.attn.{n}.weight"] = getattr(layer.self_attn, n).weight
        for n in ("gate_proj", "up_proj", "down_proj"):
            sd[f"blocks.{i}.mlp.{n}.weight"] = getattr(layer.mlp, n).weight
        sd[f"blocks.{i}.attn_norm.weight"] = layer.input_layernorm.weight
        sd[f"blocks.{i}.mlp_norm.weight"] = layer.post_attention_layernorm.weight
    with torch.no_grad():
        for k, v in sd.items():
            ours.state_dict()[k].copy_(v)
    pixels = torch.randint(0, 2, (3, 8, 16 * 16)).float()
    positions = patchify(pixels, 16)
    embeds = ours.embed(positions * 2 - 1)
    with torch.no_grad():
        ref = hf(inputs_embeds=embeds).last_hidden_state
        got = ours.hidden_states(positions)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_causality_later_patch_does_not_change_earlier_logits():
    torch.manual_seed(0)
    model = Pixar(TINY).eval()
    x = torch.randint(0, 2, (2, 8, 16 * 16)).float()
    y = x.clone()
    y[:, :, 10 * 16:] = 1 - y[:, :, 10 * 16:]  # change positions 10..15
    with torch.no_grad():
        lx, _ = model(x)
        ly, _ = model(y)
    torch.testing.assert_close(lx[:, :10], ly[:, :10])
    assert not torch.allclose(lx[:, 10:], ly[:, 10:])


def test_masked_bce_matches_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3)
    targets = torch.randint(0, 2, (2, 4, 3)).float()
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    got = masked_bce(logits, targets, mask)
    per = []
    for b in range(2):
        vals = []
        for t in range(3):
            if mask[b, t + 1]:
                p = torch.sigmoid(logits[b, t])
                y = targets[b, t + 1]
                vals.append(-(y * p.log() + (1 - y) * (1 - p).log()))
        per.append(torch.cat(vals).mean())
    torch.testing.assert_close(got, torch.stack(per).mean())


def test_padding_beyond_mask_does_not_change_loss():
    torch.manual_seed(0)
    model = Pixar(TINY).eval()
    x = torch.randint(0, 2, (1, 8, 256)).float()
    mask = torch.zeros(1, 16)
    mask[:, :6] = 1
    y = x.clone()
    y[:, :, 6 * 16:] = 1 - y[:, :, 6 * 16:]
    with torch.no_grad():
        _, l1 = model(x, mask, x)
        _, l2 = model(y, mask, y)
    torch.testing.assert_close(l1, l2)


def test_loss_falls_when_overfitting_one_batch(tmp_path):
    from pixar.config import RenderConfig
    from pixar.render.renderer import Renderer

    torch.manual_seed(0)
    cfg = ModelConfig(hidden=64, layers=2, heads=4, ffn=128, max_positions=16)
    model = Pixar(cfg)
    b = Renderer(RenderConfig(max_positions=16)).render_batch(["the cat sat", "on the mat"])
    x, mask = torch.tensor(b.pixels).float(), torch.tensor(b.mask)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        _, loss = model(x, mask, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]


def test_config_validation_and_unknown_keys(tmp_path):
    from pixar.config_io import ConfigError

    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(hidden=30, heads=4)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {hidden: 64, layerz: 2}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*unknown key.*layerz"):
        PixarConfig.from_yaml(bad)
    bad.write_text("model: {hidden: 48}\nrender: {max_positions: 10}\n")
    with pytest.raises(ConfigError, match="must agree"):
        PixarConfig.from_yaml(bad)
    ok = PixarConfig.from_yaml("configs/pixar-micro.yaml", overrides=["train.optim.lr=0.5", "model.layers=3"])
    assert ok.train.optim.lr == 0.5 and ok.model.layers == 3
    again = tmp_path / "again.yaml"
    ok.to_yaml(again)
    assert PixarConfig.from_yaml(again) == ok
