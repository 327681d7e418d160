"""The `pixar` command: the application's click root. Every subcommand lives in the module that owns it
and is imported only when used (lm-eval, textattack and transformers are slow to import):

    render, generate      harness.cli.render
    convert               harness.cli.convert
    data                  harness.cli.data
    train                 harness.cli.train  (PIXAR stage 1/2 through pixar.train.stage1, GPT-2 through harness.models.gpt2_baselines)
    bench                 harness.cli.bench
    attack                harness.cli.attack
    lm-eval               harness.cli.lm_eval  (lm-eval's own CLI, every option passed through)
    demo                  harness.study.demo
    reproduce             harness.study.reproduce

Errors: every command reports a PixarError (bad input) as one line and lets anything else (a bug) keep its
traceback (harness.cli.errors.one_line_errors).

`python -m harness.app ...` is the same command (torchrun: `torchrun --nproc-per-node 4 -m harness.app train ...`).
"""
from __future__ import annotations

import importlib
import logging
import sys

import click

import pixar

COMMANDS = {
    "render": ("harness.cli.render", "render"),
    "generate": ("harness.cli.render", "generate"),
    "convert": ("harness.cli.convert", "convert"),
    "data": ("harness.cli.data", "data"),
    "train": ("harness.cli.train", "train"),
    "bench": ("harness.cli.bench", "bench"),
    "attack": ("harness.cli.attack", "attack"),
    "lm-eval": ("harness.cli.lm_eval", "lm_eval_command"),
    "demo": ("harness.study.demo", "demo"),
    "reproduce": ("harness.study.reproduce", "reproduce"),
}


def module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A click group whose `lazy` subcommands ({name: (module, attribute)}) are imported only when used."""

    lazy: dict[str, tuple[str, str]] = COMMANDS

    def list_commands(self, ctx):
        names = {k for k, (m, _) in self.lazy.items() if module_available(m)}
        return sorted(set(super().list_commands(ctx)) | names)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self.lazy:
            module, attr = self.lazy[name]
            if module_available(module):
                cmd = getattr(importlib.import_module(module), attr)
        return cmd


# ---- console logging that never shares a line with a tqdm progress bar (records go through tqdm.write, as
# tqdm.contrib.logging.logging_redirect_tqdm does: a bar is cleared, the line printed, the bar redrawn) ----
FORMAT = "%(levelname)s %(name)s: %(message)s"


class TqdmHandler(logging.StreamHandler):
    """Writes each record with tqdm.write: an active bar is cleared first and redrawn after."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 -- logging must never raise
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Route the root logger through tqdm so progress bars and log lines never interleave on one line."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    handler = TqdmHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


def print_version(ctx: click.Context, _param, value: bool) -> None:
    """--version: the package version (pixar.__version__, the one pyproject.toml reads) and torch's."""
    if not value or ctx.resilient_parsing:
        return
    import torch

    click.echo(f"pixar-harness {pixar.__version__} (torch {torch.__version__}, python {sys.version.split()[0]})")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=print_version,
              help="Print the version and exit.")
def main(verbose: bool) -> None:
    """PIXAR: auto-regressive language modelling in pixel space, and its benchmark harness."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
