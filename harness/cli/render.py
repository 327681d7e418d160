"""`pixar render` and `pixar generate`: the model library's own commands (the `pixar` click root that
collects every command is the application's, harness.app). Thin: parse options, call library functions."""
from __future__ import annotations

import click

from pixar.config import PixarConfig, RenderConfig, preset_path
from pixar.config_io import ConfigError, atomic_write
from pixar.errors import PixarError
from pixar.model.generate import prepare_prompts
from pixar.model.transformer import load_model
from pixar.read.text import continue_text
from pixar.render.renderer import Renderer, to_image, trim_to_mask

from harness.cli import refuse_module_run
from harness.cli.errors import one_line_errors


def make_out_dir(path, what: str = "output folder"):
    """Check, before any work, that output folder `path` can be created or written (nothing is created, so a
    command that fails later leaves no empty folder): a file in the way or a read-only place is one line."""
    import os
    from pathlib import Path

    p = Path(path)
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    reason = None
    if probe.exists() and not probe.is_dir():
        reason = f"{probe} is a file, not a folder"
    elif probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        reason = f"{probe} is not writable"
    if reason:
        raise click.ClickException(f"{path}: cannot create or write the {what} ({reason})")
    return p


MAX_IMAGE_PIXELS = 1 << 26
"""The largest PNG `render`/`generate` write (67M pixels, ~67 MB in memory): --scale is bounded by it."""


class OutputError(PixarError, RuntimeError):
    """An output file that cannot be written (read-only folder, disk full, a file in place of a folder)."""


def _renderer(config: str | None, font: str | None, max_positions: int | None):
    cfg = PixarConfig.from_yaml(preset_path(config)).render if config else RenderConfig()
    if font:
        cfg.font = font
    if max_positions:
        cfg.max_positions = max_positions
    return Renderer(cfg)


def check_image_size(height: int, width: int, scale: int) -> None:
    """Refuse (one line) an upscaled image over MAX_IMAGE_PIXELS before anything is allocated."""
    pixels = height * scale * width * scale
    if pixels > MAX_IMAGE_PIXELS:
        raise click.ClickException(f"--scale {scale} would make a {width * scale}x{height * scale}-px image "
                                   f"({pixels:,} pixels, the limit is {MAX_IMAGE_PIXELS:,}); use a smaller --scale")


SCALE = click.IntRange(min=1)


@click.command()
@click.argument("text")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--scale", default=8, show_default=True, type=SCALE, help="Nearest-neighbour upscale factor.")
@click.option("--font", type=click.Path(exists=True, dir_okay=False), help="Font file overriding Pixeloid Sans.")
@click.option("--config", help="Preset name or YAML whose render section to use.")
@click.option("--full", is_flag=True, help="Show the whole strip, padding included.")
@click.option("--pair", help="Render TEXT and PAIR as a sentence pair (a, EOS, b, EOS).")
@one_line_errors("render")
def render(text, out, scale, font, config, full, pair):
    """Render TEXT as PIXAR sees it and save an upscaled PNG."""
    r = _renderer(config, font, None)
    b = r.render((text, pair) if pair is not None else text)
    px = b.pixels[0] if full else trim_to_mask(b.pixels[0], b.num_positions[0], r.cfg.position_width)
    check_image_size(px.shape[0], px.shape[1], scale)
    _save_png(to_image(px, scale), out)
    msg = f"{out}: {b.num_text_positions[0]} text positions + EOS, {px.shape[1]}x{px.shape[0]} px"
    if b.truncated[0]:
        msg += " (truncated)"
    if b.unknown_chars or b.fallback_chars:
        msg += f"; fallback font: {dict(b.fallback_chars)}; no glyph: {dict(b.unknown_chars)}"
    click.echo(msg)


def _save_png(img, out: str) -> None:
    try:
        atomic_write(out, lambda tmp: img.save(tmp, format="PNG"))
    except OSError as e:
        raise OutputError(f"{out}: cannot write the image ({e.strerror or e})") from None


def torch_device(device: str):
    """A usable torch.device from a --device string; an unknown or unavailable device -> one-line ConfigError."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"--device {device!r}: not a device ({str(e).splitlines()[0]}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"--device {device}: no such CUDA device here ({torch.cuda.device_count()} visible); use cpu")
    if dev.type not in ("cpu", "cuda", "mps") or (dev.type == "mps" and not torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: not available here; use cpu or cuda")
    return dev


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="Checkpoint directory.")
@click.argument("prompt")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False))
@click.option("-n", "--max-new-positions", default=8, show_default=True, type=click.IntRange(min=1),
              help="Positions to generate (at most the model's max_positions minus the prompt's).")
@click.option("--mode", type=click.Choice(["greedy", "sample"]), default="greedy", show_default=True)
@click.option("--temperature", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True, max=1e6),
              help="Sampling temperature (> 0).")
@click.option("--seed", default=0, show_default=True, help="Seed for --mode sample.")
@click.option("--scale", default=8, show_default=True, type=SCALE)
@click.option("--device", default="cpu", show_default=True)
@one_line_errors("generate")
def generate(checkpoint, prompt, out, max_new_positions, mode, temperature, seed, scale, device):
    """Continue PROMPT with a trained model; save prompt + continuation as a PNG and print the read-back text."""
    import math

    if not math.isfinite(temperature):
        raise click.BadParameter(f"{temperature} is not a finite number", param_hint="'--temperature'")
    dev = torch_device(device)
    model, cfg = load_model(checkpoint, dev)
    r = Renderer(cfg.render)
    pixels, eos, _ = prepare_prompts(r, [prompt])
    room = cfg.model.max_positions - int(eos[0])
    if max_new_positions > room:
        raise ConfigError(f"-n {max_new_positions}: the model has {cfg.model.max_positions} positions and the prompt "
                          f"takes {int(eos[0])}, so at most {max(room, 0)} can be generated")
    check_image_size(pixels.shape[1], (int(eos[0]) + max_new_positions) * r.cfg.position_width, scale)
    (text,), res = continue_text(model, [prompt], max_new_positions, renderer=r, mode=mode, temperature=temperature,
                                 seed=seed)
    end = (int(res.start[0]) + int(res.num_generated[0])) * r.cfg.position_width
    _save_png(to_image(res.pixels[0, :, :end], scale), out)
    click.echo(f"{out}: {int(res.num_generated[0])} positions generated after {int(res.start[0])} prompt positions"
               + (" (stopped at EOS)" if res.stopped_at_eos[0] else ""))
    click.echo(f"read back (glyph decoder): {prompt} {text}")


if __name__ == "__main__":
    refuse_module_run("harness.cli.render", "render|generate")
