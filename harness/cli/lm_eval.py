"""lm-eval's own CLI with PIXAR registered and our tasks on the include path.

    python -m harness.cli.lm_eval --model pixar --model_args checkpoint=runs/pixar-tiny-stage1/final,ocr=glyph \\
        --tasks pixar_lambada,pixar_babi_qa1 --limit 20 --output_path results/lm-eval-cli
    python -m harness.cli.lm_eval --model hf --model_args pretrained=runs/gpt2-tiny/final --tasks pixar_lambada

lm-eval's CLI never imports user code and (0.4.13) scans no entry points, so `lm_eval --model pixar` alone
fails; this wrapper imports `lm_eval.models` (keeps `hf` & co.) and harness.models.lm_eval_adapter (registers "pixar"), writes
the run-time task definitions (harness.tasks: `pixar_lambada`, `pixar_babi_qa1..20` on the en test files)
with absolute paths from `--data-dir DIR` / $PIXAR_DATA into `--tasks-dir DIR` (default: a temporary
folder), appends `--include_path` to the arguments and hands over to lm-eval. Everything else is lm-eval's
CLI (note: it indexes all built-in tasks, ~15 s; `pixar bench` avoids that with include_defaults=False).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import lm_eval.models  # noqa: F401  -- built-in models first (see harness.models.lm_eval_adapter)

import harness.models.lm_eval_adapter  # noqa: F401  -- registers "pixar"


def task_configs(data_dir: str | None = None) -> list[dict]:
    """Every task whose data is present: LAMBADA and the 20 bAbI tasks (en, test split)."""
    from pixar.paths import DataNotFound

    from harness.tasks import babi, lambada

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
    return configs


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


def prepare_argv(argv: list[str]) -> list[str]:
    """Strip our options, write the task YAMLs, return lm-eval's argv (with --include_path)."""
    from harness.tasks.common import write_task_yaml

    argv = list(argv)
    data_dir = _pop_option(argv, "--data-dir")
    tasks_dir = _pop_option(argv, "--tasks-dir") or tempfile.mkdtemp(prefix="pixar-lm-eval-tasks-")
    configs = task_configs(data_dir)
    if not configs:
        raise SystemExit("no task data found: set PIXAR_DATA or pass --data-dir (a folder laid out like shared/data)")
    write_task_yaml(configs, tasks_dir)
    if any(a == "--include_path" or a.startswith("--include_path=") for a in argv):
        print(f"note: --include_path given; the pixar tasks were written to {tasks_dir} (not added)", file=sys.stderr)
        return argv
    return argv + ["--include_path", str(Path(tasks_dir).resolve())]


def main(argv: list[str] | None = None) -> None:
    from lm_eval.__main__ import cli_evaluate

    sys.argv = [sys.argv[0], *prepare_argv(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()


if __name__ == "__main__":
    main()
