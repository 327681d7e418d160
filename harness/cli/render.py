"""`pixar render` and `pixar generate`: the model library's own commands (the `pixar` click root that
collects every command is the application's, harness.app). Thin: parse options, call library functions."""
from __future__ import annotations

import click

from harness.cli.errors import one_line_errors


def _renderer(config: str | None, font: str | None, max_positions: int | None):
    from pixar.config import PixarConfig, RenderConfig, preset_path
    from pixar.render.renderer import Renderer

    cfg = PixarConfig.from_yaml(preset_path(config)).render if config else RenderConfig()
    if font:
        cfg.font = font
    if max_positions:
        cfg.max_positions = max_positions
    return Renderer(cfg)


@click.command()
@click.argument("text")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--scale", default=8, show_default=True, help="Nearest-neighbour upscale factor.")
@click.option("--font", type=click.Path(exists=True, dir_okay=False), help="Font file overriding Pixeloid Sans.")
@click.option("--config", help="Preset name or YAML whose render section to use.")
@click.option("--full", is_flag=True, help="Show the whole strip, padding included.")
@click.option("--pair", help="Render TEXT and PAIR as a sentence pair (a, EOS, b, EOS).")
@one_line_errors("render")
def render(text, out, scale, font, config, full, pair):
    """Render TEXT as PIXAR sees it and save an upscaled PNG."""
    from pixar.render.renderer import to_image, trim_to_mask

    r = _renderer(config, font, None)
    b = r.render((text, pair) if pair is not None else text)
    px = b.pixels[0] if full else trim_to_mask(b.pixels[0], b.num_positions[0], r.cfg.position_width)
    _save_png(to_image(px, scale), out)
    msg = f"{out}: {b.num_text_positions[0]} text positions + EOS, {px.shape[1]}x{px.shape[0]} px"
    if b.truncated[0]:
        msg += " (truncated)"
    if b.unknown_chars or b.fallback_chars:
        msg += f"; fallback font: {dict(b.fallback_chars)}; no glyph: {dict(b.unknown_chars)}"
    click.echo(msg)


def _save_png(img, out: str) -> None:
    from pixar.config import atomic_write

    atomic_write(out, lambda tmp: img.save(tmp, format="PNG"))


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="Checkpoint directory.")
@click.argument("prompt")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False))
@click.option("-n", "--max-new-positions", default=8, show_default=True)
@click.option("--mode", type=click.Choice(["greedy", "sample"]), default="greedy", show_default=True)
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed for --mode sample.")
@click.option("--scale", default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@one_line_errors("generate")
def generate(checkpoint, prompt, out, max_new_positions, mode, temperature, seed, scale, device):
    """Continue PROMPT with a trained model; save prompt + continuation as a PNG."""
    import torch

    from pixar.model.transformer import load_model
    from pixar.model.generate import generate_from_text
    from pixar.render.renderer import Renderer, to_image

    model, cfg = load_model(checkpoint, device)
    r = Renderer(cfg.render)
    g = torch.Generator().manual_seed(seed)
    res = generate_from_text(model, r, [prompt], max_new_positions, mode=mode, temperature=temperature, generator=g)
    end = (int(res.start[0]) + int(res.num_generated[0])) * r.cfg.position_width
    _save_png(to_image(res.pixels[0, :, :end], scale), out)
    click.echo(f"{out}: {int(res.num_generated[0])} positions generated after {int(res.start[0])} prompt positions"
               + (" (stopped at EOS)" if res.stopped_at_eos[0] else ""))


