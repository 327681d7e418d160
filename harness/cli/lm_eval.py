"""`pixar lm-eval ...`: lm-eval's own CLI (every option passed through) with PIXAR registered and our tasks added.

    pixar lm-eval --model pixar --model_args pretrained=runs/pixar-tiny-stage2 --tasks pixar_lambada --limit 20
    pixar lm-eval --model pixar --model_args pretrained=DIR,ocr=union --tasks pixar_lambada,my_task \\
        --include_path my_tasks/ --output_path results/lm-eval-cli --log_samples
    pixar lm-eval --model hf --model_args pretrained=runs/gpt2-tiny/final --tasks pixar_lambada

lm-eval 0.4.13 scans no plugin entry points, so `lm_eval --model pixar` alone cannot find our model; this
command imports `lm_eval.models` (keeps `hf` & co.) and harness.models.lm_eval_adapter (registers "pixar"),
then runs lm-eval's `run` with the user's arguments. Ours, taken out before lm-eval sees the rest:

    --data-dir DIR    where the task data is (default $PIXAR_DATA)
    --tasks-dir DIR   where our task YAMLs go (default <pixar cache>/lm-eval-tasks/<version>-<unit>-<data hash>,
                      written once and reused; $PIXAR_CACHE, $XDG_CACHE_HOME/pixar or ~/.cache/pixar)

Our tasks: `pixar_lambada` (lm-eval's `lambada_openai` task definition over the local
lambada/lambada_test.jsonl: its offline twin) and `pixar_babi_qa1`..`qa20` (en test files). A user's own
`--include_path DIR` is kept: lm-eval indexes it and ours. With `--model pixar` the loglikelihood metric is
`pixel_nll` (no perplexity: exp of a pixel NLL is not a token perplexity), and `--device` / `--batch_size`
default to what PixarLM runs (cuda when available else cpu; 8), so lm-eval records what ran.
`python -m harness.cli.lm_eval ...` is the same command.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import click

from pixar import __version__
from pixar.checkpoint.store import CheckpointError
from pixar.paths import DataNotFound, cache_dir

from harness.tasks import babi, lambada
from harness.tasks.common import TaskError, in_pixels, write_task_yaml

PIXAR_MODELS = ("pixar", "pixar-lm")
OUR_OPTIONS = ("--data-dir", "--tasks-dir")


def task_configs(data_dir: str | None = None, unit: str = "token") -> list[dict]:
    """Every task whose data is present: LAMBADA and the 20 bAbI tasks (en, test split). unit "pixel": the
    loglikelihood metrics are named for pixels (harness.tasks.common.in_pixels)."""
    configs = []
    path = lambada.lambada_path(data_dir)
    if path is not None:
        configs.append(lambada.lm_eval_task(path))
    try:
        folder = babi.babi_dir("en", data_dir)
        for t in babi.TASK_IDS:
            configs.append(babi.lm_eval_task(t, babi.babi_file(t, "test", folder), max_gen_toks=16))
    except DataNotFound:
        pass
    return [in_pixels(c) for c in configs] if unit == "pixel" else configs


def default_tasks_dir(configs: list[dict], unit: str) -> Path:
    """<pixar cache>/lm-eval-tasks/<version>-<unit>-<hash of the data paths>: one folder per data location."""
    paths = sorted(str(v) for c in configs for v in (c.get("dataset_kwargs") or {}).values())
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:12]
    return cache_dir() / "lm-eval-tasks" / f"{__version__}-{unit}-{digest}"


def _pop_option(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
            del argv[i: i + 2]
            return value
        if a.startswith(name + "="):
            del argv[i]
            return a.split("=", 1)[1]
    return None


def _has(argv: list[str], *names: str) -> bool:
    return any(a == n or a.startswith(n + "=") for a in argv for n in names)


def prepare_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take our options out, write our task YAMLs -> (lm-eval's argv, the include paths: the user's, then ours)."""
    argv = list(argv)
    data_dir = _pop_option(argv, "--data-dir")
    tasks_dir = _pop_option(argv, "--tasks-dir")
    model = _pop_option(list(argv), "--model") or ""
    unit = "pixel" if model in PIXAR_MODELS else "token"
    configs = task_configs(data_dir, unit)
    if not configs:
        raise click.ClickException("no task data found: set PIXAR_DATA or pass --data-dir (a folder laid out like "
                                   "shared/data)")
    folder = Path(tasks_dir) if tasks_dir else default_tasks_dir(configs, unit)
    write_task_yaml(configs, folder)
    include = [p for p in [_pop_option(argv, "--include_path")] if p] + [str(folder.resolve())]
    if model in PIXAR_MODELS:  # lm-eval's CLI defaults (cuda:0, batch 1) are recorded, not what PixarLM runs
        if not _has(argv, "--device"):
            import torch

            argv += ["--device", "cuda" if torch.cuda.is_available() else "cpu"]
        if not _has(argv, "--batch_size", "-b"):
            argv += ["--batch_size", "8"]
    return argv, include


def lm_eval_run_options() -> list[str]:
    """Every option string of lm-eval's `run` command (what `pixar lm-eval` passes through)."""
    from lm_eval._cli import HarnessCLI

    run = HarnessCLI()._subparsers.choices["run"]
    return sorted(o for a in run._actions for o in a.option_strings)


def _expected():
    from harness.models.lm_eval_adapter import PixarLMArgumentError

    return (CheckpointError, DataNotFound, PixarLMArgumentError, TaskError)


def run_lm_eval(argv: list[str]) -> None:
    """lm-eval's CLI on argv (with our tasks), the include paths passed as a list (the CLI takes one path)."""
    import lm_eval.models  # noqa: F401  -- built-in models first (see harness.models.lm_eval_adapter)
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    import harness.models.lm_eval_adapter  # noqa: F401  -- registers "pixar"

    try:
        argv, include = prepare_argv(argv)
        setup_logging()
        parser = HarnessCLI()
        saved, sys.argv = sys.argv, ["lm-eval", "run", *argv]
        try:
            args = parser.parse_args()
        finally:
            sys.argv = saved
        args.include_path = include if len(include) > 1 else include[0]
        parser.execute(args)
    except _expected() as e:
        raise click.ClickException(str(e).strip().splitlines()[0]) from None


@click.command("lm-eval", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                            "help_option_names": []}, add_help_option=False)
@click.pass_context
def lm_eval_command(ctx: click.Context) -> None:
    """lm-eval's CLI (every option passed through) with --model pixar and our tasks; --help lists lm-eval's options."""
    argv = list(ctx.args)
    if not argv or _has(argv, "--help", "-h"):
        click.echo(__doc__.split("\n\n", 2)[2].rstrip() + "\n\nlm-eval's options:\n")
        from lm_eval._cli import HarnessCLI

        HarnessCLI()._subparsers.choices["run"].print_help()
        return
    run_lm_eval(argv)


if __name__ == "__main__":
    sys.exit(lm_eval_command())
