"""`pixar convert`: import an official april-tools/pixar backbone folder into our checkpoint format
(the conversion itself is pixar.checkpoint.official)."""
from __future__ import annotations

import click

from pixar.checkpoint.official import convert_official
from pixar.checkpoint.store import CheckpointError
from harness.cli import refuse_module_run


@click.command()
@click.argument("src", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Checkpoint directory to write.")
@click.option("--max-positions", default=360, show_default=True, help="Rendering length (paper: 360 = 720 patches).")
def convert(src, out, max_positions):
    """Convert an official april-tools/pixar backbone folder (SRC) into a PIXAR checkpoint."""
    try:
        path = convert_official(src, out, max_positions)
    except CheckpointError as e:
        raise click.ClickException(str(e))
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    refuse_module_run("harness.cli.convert", "convert")
