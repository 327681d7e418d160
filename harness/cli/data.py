"""`pixar data prepare`: pack pretraining sources once into a memory-mapped dataset (docs/data.md).

    pixar data prepare corpus --out data/corpus-prepared --config pixar-tiny [--num-proc 2]
    pixar data prepare hf:lucadiliello/bookcorpusopen hf:wikipedia:20220301.en --out /shared/booksandwiki --num-proc 32
    pixar train --config pixar-113m --set 'train.data=[/shared/booksandwiki]'

Packing settings come from `--config PRESET`'s train section (so the dataset opens in a run of that preset),
else TrainConfig's defaults (the paper's 1180/101 characters, as pixar-113m); each option overrides either.
Running the same command again on unchanged inputs is a no-op; changed inputs are refused (one line
naming the manifest) unless --force.
"""
from __future__ import annotations

import time

import click

from pixar.config import TrainConfig, preset_path
from pixar.config_io import from_dict, read_yaml_mapping
from pixar.data.dataset import read_manifest, verify_shards
from pixar.data.prepare import packing_config, prepare as run_prepare, source_bytes

from harness.cli import refuse_module_run
from harness.cli.errors import one_line_errors

_DEFAULTS = TrainConfig()


def _preset_train(config: str) -> TrainConfig:
    """The train section of a PIXAR or GPT-2 preset (both hold a TrainConfig under `train`)."""
    raw = read_yaml_mapping(preset_path(config))
    return from_dict(TrainConfig, raw.get("train") or {}, where=f"{preset_path(config)}:train")


@click.group()
def data() -> None:
    """Prepare pretraining datasets."""


@data.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--config", help="Preset name or YAML whose train.* packing settings to use (e.g. pixar-tiny), so the "
                               "dataset opens in a run of that preset. Default: TrainConfig's (as pixar-113m).")
@click.option("--max-chars", type=int, help=f"Longest chunk in characters. [default: the preset's, else {_DEFAULTS.max_chars}]")
@click.option("--min-chars", type=int, help="Shortest chunk kept (pixar packing; the official packing has none). "
                                            f"[default: the preset's, else {_DEFAULTS.min_chars}]")
@click.option("--seed", type=int, help=f"Seed of the validation split. [default: the preset's, else {_DEFAULTS.seed}]")
@click.option("--val-fraction", type=float,
              help=f"Held-out fraction. [default: the preset's, else {_DEFAULTS.val_fraction}]")
@click.option("--packing", type=click.Choice(["pixar", "official"]),
              help="pixar: greedy, long sentences cut at spaces; official: the official collate_text. "
                   f"[default: the preset's, else {_DEFAULTS.packing}]")
@click.option("--num-proc", default=1, show_default=True, type=click.IntRange(1, 1024), help="Processes (the output is the same for any N).")
@click.option("--data-dir", type=click.Path(), help="Data folder for relative sources (default: $PIXAR_DATA).")
@click.option("--force", is_flag=True, help="Replace a dataset in --out prepared from other sources or settings.")
@one_line_errors("data prepare")
def prepare(sources, out, config, max_chars, min_chars, seed, val_fraction, packing, num_proc, data_dir, force):
    """Pack SOURCE... (.txt/.jsonl files or folders, hf:NAME[:CONFIG] streamed) into --out."""
    base = _DEFAULTS if config is None else _preset_train(config)
    given = {"max_chars": max_chars, "min_chars": min_chars, "seed": seed, "val_fraction": val_fraction,
             "packing": packing}
    cfg = TrainConfig(data=list(sources), **{k: getattr(base, k) if v is None else v for k, v in given.items()})
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


@data.command()
@click.argument("folder", type=click.Path(file_okay=False))
@one_line_errors("data verify")
def verify(folder):
    """Hash every shard of the prepared dataset FOLDER against its manifest (sha256), ignoring the
    hash-on-first-open cache; one line naming the first corrupt shard."""
    from pathlib import Path

    root = Path(folder)
    manifest = read_manifest(root)
    t0 = time.perf_counter()
    n = verify_shards(root, manifest, cache=False)
    splits = manifest["splits"]
    click.echo(f"{folder}: {n} shard(s) match the manifest's sha256 ({splits['train']['chunks']} train + "
               f"{splits['val']['chunks']} val chunks, {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    refuse_module_run("harness.cli.data", "data")
