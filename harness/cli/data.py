"""`pixar data prepare`: pack pretraining sources once into a memory-mapped dataset (docs/data.md).

    pixar data prepare corpus --out data/corpus-prepared [--num-proc 2]
    pixar data prepare hf:lucadiliello/bookcorpusopen hf:wikipedia:20220301.en --out /shared/booksandwiki --num-proc 32
    pixar train --config pixar-113m --set 'train.data=[/shared/booksandwiki]'

Defaults are TrainConfig's, so a dataset prepared with defaults opens in a run with default settings.
Running the same command again on unchanged inputs is a no-op; changed inputs are refused (one line
naming the manifest) unless --force.
"""
from __future__ import annotations

import time

import click

from pixar.config import TrainConfig

from harness.cli.errors import one_line_errors

_DEFAULTS = TrainConfig()


@click.group()
def data() -> None:
    """Prepare pretraining datasets."""


@data.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--max-chars", default=_DEFAULTS.max_chars, show_default=True, help="Longest chunk in characters.")
@click.option("--min-chars", default=_DEFAULTS.min_chars, show_default=True,
              help="Shortest chunk kept (pixar packing; the official packing has none).")
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, help="Seed of the validation split.")
@click.option("--val-fraction", default=_DEFAULTS.val_fraction, show_default=True, help="Held-out fraction.")
@click.option("--packing", type=click.Choice(["pixar", "official"]), default=_DEFAULTS.packing, show_default=True,
              help="pixar: greedy, long sentences cut at spaces; official: the official collate_text.")
@click.option("--num-proc", default=1, show_default=True, help="Processes (the output is the same for any N).")
@click.option("--data-dir", type=click.Path(), help="Data folder for relative sources (default: $PIXAR_DATA).")
@click.option("--force", is_flag=True, help="Replace a dataset in --out prepared from other sources or settings.")
@one_line_errors("data prepare")
def prepare(sources, out, max_chars, min_chars, seed, val_fraction, packing, num_proc, data_dir, force):
    """Pack SOURCE... (.txt/.jsonl files or folders, hf:NAME[:CONFIG] streamed) into --out."""
    from pixar.data.prepare import packing_config, prepare as run_prepare, source_bytes

    cfg = TrainConfig(data=list(sources), max_chars=max_chars, min_chars=min_chars, seed=seed,
                      val_fraction=val_fraction, packing=packing)
    t0 = time.perf_counter()
    manifest, built = run_prepare(list(sources), out, packing_config(cfg), num_proc, data_dir, force)
    splits = manifest["splits"]
    counts = f"{splits['train']['chunks']} train + {splits['val']['chunks']} val chunks"
    if not built:
        click.echo(f"{out}: up to date ({counts}, fingerprint {manifest['fingerprint']})")
        return
    secs = time.perf_counter() - t0
    mb = source_bytes(manifest["sources"]) / 1e6
    rate = f", {mb / secs:.1f} MB/s" if mb else ""
    click.echo(f"{out}: {manifest['documents']} documents -> {counts} in {secs:.1f} s "
               f"({mb:.1f} MB{rate}, {num_proc} process{'es' if num_proc > 1 else ''}; "
               f"fingerprint {manifest['fingerprint']})")
