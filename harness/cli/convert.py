"""`pixar convert`: import an official april-tools/pixar backbone folder into our checkpoint format
(the conversion itself is pixar.model.official). An existing, non-empty -o folder is refused unless
--force, and even then only a checkpoint folder is replaced, never a run folder or a dataset."""
from __future__ import annotations

from pathlib import Path

import click

from pixar.model.official import convert_official

from harness.cli import refuse_module_run
from harness.cli.errors import one_line_errors


@click.command()
@click.argument("src", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Checkpoint directory to write.")
@click.option("--max-positions", default=360, show_default=True, type=click.IntRange(2, 1 << 20),
              help="Rendering length (paper: 360 = 720 patches).")
@click.option("--force", is_flag=True, help="Replace the checkpoint already in -o (a run or dataset folder never is).")
@one_line_errors("convert")
def convert(src, out, max_positions, force):
    """Convert an official april-tools/pixar backbone folder (SRC) into a PIXAR checkpoint."""
    dest = Path(out)
    if dest.exists() and not force and (not dest.is_dir() or any(dest.iterdir())):
        raise click.ClickException(f"{out}: exists and is not empty; pass --force to replace a checkpoint there "
                                   "(a run or dataset folder is never replaced)")
    click.echo(f"wrote {convert_official(src, out, max_positions)}")


if __name__ == "__main__":
    refuse_module_run("harness.cli.convert", "convert")
