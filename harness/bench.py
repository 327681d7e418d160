"""`pixar bench lambada|babi`: run PIXAR and GPT-2 baselines through both protocols and record everything.

Protocols (never mixed in one column; see harness.tables):
  paper    each runner's `paper_eval` (harness.runners): PIXAR renders the prompt, spaces it (3 px), greedily
           generates a fixed number of positions (LAMBADA 4, bAbI 5; no EOS stop), reads them back with the
           OCR engine(s) and scores the first word (pixar.ocr.score_first_word: leading alphabetic run, g->q
           fold, case-sensitive; union = any engine). GPT-2: greedy 5 tokens, first word (case-insensitive as
           the official evaluate_gpt2.py, and case-sensitive). Readability = the first word read is an English
           word (pixar.wordlist). For bAbI's comma-list answers (tasks 8, 19) the first items are compared.
  lm-eval  lm_eval.simple_evaluate on run-time task dicts (harness.tasks.*), TaskManager(include_defaults=
           False), offline, on each runner's `lm_eval_model` (PIXAR: harness.lm.PixarLM; GPT-2: HFLM).

Outputs under --out: predictions-<model>-<protocol>[-<task>].jsonl, lm-eval-<model>.json, table.md + table.csv,
tasks/*.yaml and summary.json in the harness.results schema (+ "protocols" and the wide "rows" per model).
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

from pixar.provenance import slug

from .results import Metric, proportion, with_stderr, write_json, write_jsonl, write_summary
from .runners import LMRunner, load_lm_runners

log = logging.getLogger(__name__)
PAPER_POSITIONS = {"lambada": 4, "babi": 5}
PROTOCOL_NOTES = {
    "paper": "generate a fixed number of positions (GPT-2: 5 greedy tokens), read back, first word vs target; "
             "PIXAR case-sensitive with g->q fold (union = any engine); GPT-2 case-insensitive as evaluate_gpt2.py",
    "lm-eval": "lm_eval.simple_evaluate, run-time task dicts; PIXAR via harness.lm.PixarLM (pixel NLL, "
               "OCR read-back), GPT-2 via HFLM (token NLL)",
}
NOT_PROPORTIONS = ("_nll", "_ppl")  # lm-eval means with a stderr; everything else here is a fraction of n


def load_models(checkpoint: str | None, baselines: list[str], device: str, batch_size: int, ocr: str,
                data_dir: str | None, seed: int) -> list[LMRunner]:
    """--checkpoint (PIXAR) and --baseline (GPT-2) models as runners."""
    return load_lm_runners(checkpoint, list(baselines), device, batch_size, ocr, data_dir, seed)


def paper_eval(runner: LMRunner, examples: list[dict], n_positions: int, readability,
               batch_size: int | None = None, transform=None) -> tuple[dict, list[dict]]:
    """examples: {'idx', 'prompt', 'target'} -> (metrics, per-example rows): the runner's paper protocol."""
    return runner.paper_eval(examples, n_positions, readability, transform)


def make_readability(data_dir: str | None, texts: list[str]):
    """pixar.wordlist readability over the corpus words + the dataset's words; None (logged) without a corpus."""
    from pixar.ocr import Readability, build_wordlist
    from pixar.paths import DataNotFound

    try:
        return Readability(build_wordlist(data_dir, extra_texts=texts))
    except (DataNotFound, ValueError) as e:
        log.warning("readability skipped: %s", e)
        return None


def lm_eval_eval(runner: LMRunner, tasks: list[dict], limit: int | None, batch_size: int, seed: int) -> dict:
    """simple_evaluate on run-time task dicts; returns lm-eval's result dict (samples included)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(model=runner.lm_eval_model(batch_size), tasks=copy.deepcopy(tasks),
                                   task_manager=TaskManager(include_defaults=False), limit=limit,
                                   bootstrap_iters=1000, log_samples=True, random_seed=seed,
                                   numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)


def sample_rows(samples: list[dict]) -> list[dict]:
    keep = ("doc_id", "target", "resps", "filtered_resps", "acc", "nll", "exact_match")
    return [{k: s[k] for k in keep if k in s} for s in samples]


def metric_rows(task: str, model: str, values: dict[str, float], n: int, stderr: dict | None = None) -> list[Metric]:
    """Labelled metric values -> schema rows: fractions with a Wilson interval, lm-eval means with +-1.96 stderr."""
    rows = []
    for key, value in values.items():
        protocol = "paper" if key.startswith("paper_") else "lm-eval"
        if key.endswith(NOT_PROPORTIONS):
            rows.append(with_stderr(task, model, protocol, key, value, n, (stderr or {}).get(key)))
        else:
            rows.append(proportion(task, model, protocol, key, value, n))
    return rows


class BenchRun:
    """One bench command's records: files, wide rows, metric rows, lm-eval tables; `finish` writes them."""

    def __init__(self, out: Path, bench: str, data_dir: str | None):
        self.out, self.bench, self.data_dir = Path(out), bench, data_dir
        self.files: list[Path] = []
        self.rows: list[dict] = []
        self.metrics: list[Metric] = []
        self.ids: dict[tuple, dict] = {}
        self.lm_results: list[tuple[str, dict]] = []

    def record_tasks(self, tasks: list[dict]) -> None:
        """The task dicts as lm-eval YAML under out/tasks: `lm_eval --include_path out/tasks` reruns them."""
        from .tasks.common import write_task_yaml

        self.files += write_task_yaml(tasks, self.out / "tasks") + [self.out / "tasks" / "utils.py"]

    def jsonl(self, name: str, rows: list[dict]) -> None:
        self.files.append(write_jsonl(self.out / name, rows))

    def paper(self, runner: LMRunner, row: dict, examples: list[dict], positions: int, readability,
              suffix: str = "") -> None:
        metrics, preds = runner.paper_eval(examples, positions, readability)
        self.jsonl(f"predictions-{slug(runner.name)}-paper{suffix}.jsonl", preds)
        row.update(metrics)
        self.metrics += metric_rows(row["task"], runner.name, metrics, len(examples))

    def lm_eval(self, runner: LMRunner, row: dict, tasks: list[dict], limit, batch_size: int, seed: int,
                suffix: str = "") -> None:
        res = lm_eval_eval(runner, tasks, limit, batch_size, seed)
        for task_name, task_samples in res.pop("samples", {}).items():
            self.jsonl(f"predictions-{slug(runner.name)}-lm-eval-{task_name}.jsonl", sample_rows(task_samples))
        self.files.append(write_json(self.out / f"lm-eval-{slug(runner.name)}{suffix}.json", res, self.out,
                                     self.data_dir))
        self.lm_results.append((runner.name, res))
        result = res["results"][tasks[0]["task"]]
        values = runner.lm_eval_metrics(result)
        stderr = {runner.lm_eval_keys[k.split("_stderr,")[0]]: v for k, v in result.items()
                  if "_stderr," in k and k.split("_stderr,")[0] in runner.lm_eval_keys}
        n = int(res.get("n-samples", {}).get(tasks[0]["task"], {}).get("effective", row["n"]))
        row.update(values)
        self.metrics += metric_rows(row["task"], runner.name, values, n, stderr)

    def add_row(self, runner: LMRunner, row: dict) -> None:
        self.rows.append(row)
        self.ids[(row["task"], runner.name)] = {k: row[k] for k in ("kind", "params", "finetuned", "ocr")}

    def finish(self, models: list[LMRunner], config: dict, seed: int, data: dict, **extra) -> dict:
        """table.md/.csv (with intervals) + summary.json; print lm-eval's tables and ours; return the summary."""
        from lm_eval.utils import make_table

        from .tables import METRIC_LABELS, metrics_table, to_markdown, write_table

        df = metrics_table([m.to_json() for m in self.metrics], self.ids)
        md, csv = write_table(df, self.out)
        protocol = {k: f"{PROTOCOL_NOTES['paper' if k.startswith('paper_') else 'lm-eval']} -- {label}"
                    for k, label in METRIC_LABELS.items()}
        models_info = [{"name": m.name, "kind": m.kind, "finetuned": m.finetuned, **m.info} for m in models]
        summary = write_summary(self.out, command=f"bench {self.bench}", protocol=protocol, config=config, seed=seed,
                                data=data, models=models_info, files=self.files + [md, csv], metrics=self.metrics,
                                data_dir=self.data_dir, rows=self.rows, **extra)
        for name, res in self.lm_results:
            print(f"lm-eval results: {name}")
            print(make_table(res))
        print(to_markdown(df))
        return summary


def run_lambada(checkpoint: str | None, baselines: list[str], out: Path, limit: int | None = None,
                protocols: tuple[str, ...] = ("paper", "lm-eval"), ocr: str = "glyph", batch_size: int = 16,
                device: str = "cpu", data_dir: str | None = None, seed: int = 0, positions: int = 4) -> dict:
    from pixar.paths import data_dir as resolve_data

    from .tasks import lambada

    texts = lambada.load_lambada(data_dir)
    path = lambada.lambada_path(data_dir)
    sub = texts[:limit] if limit else texts
    models = load_models(checkpoint, baselines, device, batch_size, ocr, data_dir, seed)
    run = BenchRun(out, "lambada", str(resolve_data(data_dir) or "") or None)
    tasks = [lambada.lm_eval_task(path)]
    run.record_tasks(tasks)
    readability = make_readability(data_dir, texts) if "paper" in protocols else None
    for runner in models:
        row = runner.id_columns("lambada", len(sub), ocr)
        if "paper" in protocols:
            run.paper(runner, row, lambada.paper_examples(sub), positions, readability)
        if "lm-eval" in protocols:
            run.lm_eval(runner, row, tasks, limit, batch_size, seed)
        run.add_row(runner, row)
    config = {"checkpoint": checkpoint, "baselines": baselines, "limit": limit, "protocols": list(protocols),
              "ocr": ocr, "batch_size": batch_size, "device": device, "data_dir": data_dir, "seed": seed,
              "positions": positions}
    data = {"source": str(path) if path else "hf:EleutherAI/lambada_openai", "n_total": len(texts),
            "n_evaluated": len(sub)}
    return run.finish(models, config, seed, data, protocols=list(protocols),
                      protocol_notes={p: PROTOCOL_NOTES[p] for p in protocols}, paper_positions=positions, ocr=ocr)


def run_babi(checkpoint: str | None, baselines: list[str], out: Path, tasks: str = "1", variant: str = "en",
             babi_folder: str | None = None, limit: int | None = None, protocols: tuple[str, ...] = ("paper", "lm-eval"),
             ocr: str = "glyph", batch_size: int = 16, device: str = "cpu", data_dir: str | None = None, seed: int = 0,
             positions: int = 5, finetune=None) -> dict:
    """finetune: a harness.finetune.TaskFinetuneConfig to train each model on each task's train split first."""
    from pixar.paths import data_dir as resolve_data

    from .tasks import babi

    task_ids = babi.parse_task_list(tasks)
    folder = babi.babi_dir(variant, data_dir, babi_folder)
    for t in task_ids:  # fail early, before any model work
        babi.babi_file(t, "test", folder)
        if finetune is not None:
            babi.babi_file(t, "train", folder)
    models = load_models(checkpoint, baselines, device, batch_size, ocr, data_dir, seed)
    run = BenchRun(out, "babi", str(resolve_data(data_dir) or "") or None)
    counts = {}
    for t in task_ids:
        test = babi.load_babi(t, "test", folder)
        sub = test[:limit] if limit else test
        counts[f"qa{t}"] = {"n_total": len(test), "n_evaluated": len(sub)}
        name = babi.task_name(t, folder)
        task_dicts = [babi.lm_eval_task(t, babi.babi_file(t, "test", folder), max_gen_toks=16)]
        run.record_tasks(task_dicts)
        train_pairs = ([(q.paper_prompt(), q.answer) for q in babi.load_babi(t, "train", folder)]
                       if finetune is not None else [])
        readability = make_readability(data_dir, [q.finetune_text() for q in test]) if "paper" in protocols else None
        examples = [{"idx": i, "prompt": q.paper_prompt(), "target": q.answer} for i, q in enumerate(sub)]
        for base in models:
            runner = base.finetune(train_pairs, finetune) if finetune is not None else base
            suffix = f"-qa{t}"
            if runner.finetuned:
                run.jsonl(f"finetune-{slug(runner.name)}{suffix}.jsonl", runner.finetune_log)
            row = runner.id_columns(f"babi {name} ({folder.name})", len(sub), ocr)
            if "paper" in protocols:
                run.paper(runner, row, examples, positions, readability, suffix)
            if "lm-eval" in protocols:
                run.lm_eval(runner, row, task_dicts, limit, batch_size, seed, suffix)
            run.add_row(runner, row)
    config = {"checkpoint": checkpoint, "baselines": baselines, "tasks": tasks, "variant": variant,
              "babi_dir": babi_folder, "limit": limit, "protocols": list(protocols), "ocr": ocr,
              "batch_size": batch_size, "device": device, "data_dir": data_dir, "seed": seed, "positions": positions,
              "finetune": None if finetune is None else vars(finetune)}
    return run.finish(models, config, seed, {"source": str(folder), "tasks": counts}, protocols=list(protocols),
                      protocol_notes={p: PROTOCOL_NOTES[p] for p in protocols}, paper_positions=positions, ocr=ocr,
                      finetune=None if finetune is None else vars(finetune))
