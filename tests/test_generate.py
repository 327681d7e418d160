"""Generation: KV cache == recompute, batching == one at a time, EOS stop, sampling determinism."""
import torch

from pixar.checkpoint.store import CheckpointError, save_checkpoint
from pixar.model.transformer import load_model
from pixar.config import ModelConfig, PixarConfig, RenderConfig
from pixar.model.generate import generate, generate_from_text, prepare_prompts
from pixar.model.transformer import Pixar
import pytest

CFG = ModelConfig(hidden=32, layers=2, heads=4, ffn=64, max_positions=32)


@pytest.fixture(scope="module")
def setup():
    from pixar.render.renderer import Renderer
    torch.manual_seed(0)
    return Pixar(CFG).eval(), Renderer(RenderConfig(max_positions=32))


PROMPTS = ["Mary went to the", "a", "John is in the kitchen |"]


def test_kv_cache_equals_recompute(setup):
    model, r = setup
    a = generate_from_text(model, r, PROMPTS, 6, use_cache=True, stop_at_eos=False)
    b = generate_from_text(model, r, PROMPTS, 6, use_cache=False, stop_at_eos=False)
    assert (a.pixels == b.pixels).all()
    torch.testing.assert_close(a.probs, b.probs, rtol=1e-4, atol=1e-5)


def test_batched_equals_one_at_a_time(setup):
    model, r = setup
    batched = generate_from_text(model, r, PROMPTS, 5, stop_at_eos=False)
    for i, p in enumerate(PROMPTS):
        single = generate_from_text(model, r, [p], 5, stop_at_eos=False)
        assert (single.generated_span(0) == batched.generated_span(i)).all()
        torch.testing.assert_close(single.probs[0], batched.probs[i], rtol=1e-4, atol=1e-5)


def test_first_generated_position_overwrites_eos_and_prompt_is_kept(setup):
    model, r = setup
    pixels, eos, _ = prepare_prompts(r, ["hello"])
    g = generate(model, pixels, eos, 3, stop_at_eos=False)
    e = int(eos[0])
    assert g.start[0] == e and g.num_generated[0] == 3
    assert (g.pixels[0, :, : e * 16] == pixels[0, :, : e * 16]).all()
    # the greedy output equals thresholding the reported probabilities
    assert (g.generated_span(0) == (g.probs[0] > 0.5).numpy().reshape(3, 8, 16).transpose(1, 0, 2).reshape(8, 48)).all()


def test_stops_when_model_emits_eos_block(setup):
    model, r = setup
    model = Pixar(CFG).eval()
    with torch.no_grad():  # zero head -> logits 0 -> p(white) = 0.5 -> greedy (p > 0.5) gives all ink = EOS
        model.head.weight.zero_()
    pixels, eos, _ = prepare_prompts(r, ["stop", "now please"])
    g = generate(model, pixels, eos, 5)
    assert g.stopped_at_eos.all() and (g.num_generated == 1).all()
    g2 = generate(model, pixels, eos, 5, stop_at_eos=False)
    assert (g2.num_generated == 5).all()


def test_sampling_is_seeded(setup):
    model, r = setup
    g1 = generate_from_text(model, r, PROMPTS, 4, mode="sample", generator=torch.Generator().manual_seed(3), stop_at_eos=False)
    g2 = generate_from_text(model, r, PROMPTS, 4, mode="sample", generator=torch.Generator().manual_seed(3), stop_at_eos=False)
    g3 = generate_from_text(model, r, PROMPTS, 4, mode="sample", generator=torch.Generator().manual_seed(4), stop_at_eos=False)
    assert (g1.pixels == g2.pixels).all() and not (g1.pixels == g3.pixels).all()
    with pytest.raises(ValueError, match="temperature"):
        generate_from_text(model, r, PROMPTS, 1, temperature=0)


def test_checkpoint_round_trip_and_errors(setup, tmp_path):
    model, _ = setup
    cfg = PixarConfig(model=CFG, render=RenderConfig(max_positions=32))
    d = save_checkpoint(tmp_path / "ckpt", model, cfg, state={"step": 3, "opt": {"m": torch.ones(2)}})
    loaded, cfg2 = load_model(d)
    assert cfg2 == cfg
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    from pixar.checkpoint.store import load_state
    st = load_state(d)
    assert st["step"] == 3 and torch.equal(st["opt"]["m"], torch.ones(2))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(d)
    # overwriting is atomic: the old directory is replaced as a whole
    save_checkpoint(d, model, cfg)
    assert load_model(d)[1] == cfg and not (d / "state.json").exists()


def test_run_folder_resolves_to_its_last_checkpoint(setup, tmp_path):
    from pixar.checkpoint.store import LAST_POINTER, resolve_checkpoint
    import json

    model, _ = setup
    cfg = PixarConfig(model=CFG, render=RenderConfig(max_positions=32))
    run = tmp_path / "run"
    save_checkpoint(run / "step-0000005", model, cfg)
    (run / LAST_POINTER).write_text(json.dumps({"step": 5, "path": "step-0000005"}))
    assert resolve_checkpoint(run) == run / "step-0000005"
    assert load_model(run)[1] == cfg  # every loader accepts the run folder
    (run / LAST_POINTER).write_text(json.dumps({"step": 6, "path": "step-0000006"}))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(run)


def test_cli_generate_writes_the_prompt_and_its_continuation(micro_checkpoint, tmp_path):
    """`pixar generate`: the PNG shows exactly the prompt's positions + the generated ones (scaled), and the
    continuation equals the library's greedy generation from the same checkpoint."""
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from harness.app import main
    from pixar.render.renderer import Renderer

    out = tmp_path / "gen.png"
    r = CliRunner().invoke(main, ["generate", "--checkpoint", str(micro_checkpoint), "Mary went to the", "-o", str(out),
                                  "-n", "3", "--scale", "2"])
    assert r.exit_code == 0, r.output
    model, cfg = load_model(micro_checkpoint)
    ren = Renderer(cfg.render)
    ref = generate_from_text(model, ren, ["Mary went to the"], 3)
    start, n = int(ref.start[0]), int(ref.num_generated[0])
    assert f"{n} positions generated after {start} prompt positions" in r.output
    img = np.asarray(Image.open(out).convert("L"))
    width = (start + n) * ren.cfg.position_width
    assert img.shape == (2 * ref.pixels.shape[1], 2 * width)
    expected = np.repeat(np.repeat(np.asarray(ref.pixels[0, :, :width]), 2, 0), 2, 1)
    assert ((img > 127) == (expected > 0.5)).all()

    bad = CliRunner().invoke(main, ["generate", "--checkpoint", str(tmp_path / "missing"), "x", "-o", str(out)])
    assert bad.exit_code != 0 and "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1
