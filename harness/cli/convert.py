"""`pixar convert`: import an official april-tools/pixar backbone folder into our checkpoint format
(the conversion itself is pixar.model.official)."""
from __future__ import annotations

import click

from pixar.model.official import convert_official

from harness.cli.errors import one_line_errors


@click.command()
@click.argument("src", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Checkpoint directory to write.")
@click.option("--max-positions", default=360, show_default=True, help="Rendering length (paper: 360 = 720 patches).")
@one_line_errors("convert")
def convert(src, out, max_positions):
    """Convert an official april-tools/pixar backbone folder (SRC) into a PIXAR checkpoint."""
    path = convert_official(src, out, max_positions)
    click.echo(f"wrote {path}")
