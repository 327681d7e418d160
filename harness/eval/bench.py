"""`pixar bench lambada|babi`: run PIXAR and GPT-2 baselines through both protocols and record everything.

Protocols (never mixed in one column; see harness.results.tables):
  paper, paper-*   the named generate-and-read protocols of harness.eval.protocols (docs/protocol.md): `paper` is
           the official one (LAMBADA: the original test set through process_lambda; bAbI: one sample per
           generated task-1 story; Tesseract with the official preprocessing; the notebooks' scorer and
           vocabulary), the others our cleaner variants (paper-openai-cased, paper-all-questions, ...) and GPT-2's
           official rules (paper-gpt2-official: 1 new token, as max_length=5 total; text models only). A model
           that had to cut prompts to fit its positions reports the protocol as `<label>+fit<N>` (summary "fits":
           room, unit, prompts cut and their share). Every protocol also gets reference rows (harness.results.
           reference: majority class, uniform chance, the task heuristic) on the same examples, each model its
           distinct answers and top answer share, and a model whose lower bound does not clear the best reference
           row is marked "at chance" (summary "references", "diversity"; metric rows' `note`). Each
           runner's `protocol_eval` generates and reads; every reading engine, their union (glyph or
           Tesseract: PaddleOCR is not available offline), readability (the paper's union, each engine's, and
           the strict variant: harness.eval.readability) get a 95% Wilson interval, and
           every PIXAR vs GPT-2 pair a paired interval of the difference (Newcombe; summary "comparisons").
           GPT-2 under `paper`: 5 greedy new tokens (ours), scored as the official evaluate_gpt2.py.
  lm-eval  lm_eval.simple_evaluate on run-time task dicts (harness.tasks.*), TaskManager(include_defaults=
           False), offline, on each runner's `lm_eval_model` (PIXAR: harness.models.lm_eval_adapter.PixarLM; GPT-2: HFLM).

Outputs under --out: predictions-<model>-<protocol>[-<task>].jsonl, lm-eval-<model>.json, table.md + table.csv and
summary.json in the harness.results.schema schema (+ "protocols", "protocol_specs", "comparisons", the lm-eval task dicts
and the wide lm-eval "rows" per model). Data only: no task code goes into a results folder.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

from pixar.paths import data_dir as resolve_data
from pixar.provenance import slug

from harness.eval.protocols import (build_vocabulary, check_task, count_pixel_cuts, fit_record, get_protocol,
                                    load_examples, paired_difference, with_context_cap)
from harness.eval.readability import metric_note, readability_flags
from harness.models import LMRunner, load_lm_runners
from harness.results import stats
from harness.results.reference import diversity, is_at_chance, reference_rows
from harness.results.schema import Metric, point, proportion, with_stderr, write_json, write_jsonl, write_summary
from harness.results.tables import METRIC_LABELS, metrics_table, to_markdown, write_table
from harness.tasks import babi, lambada

log = logging.getLogger(__name__)
PAPER_POSITIONS = {"lambada": 4, "babi": 5}
PROTOCOL_NOTES = {
    "paper": "generate a fixed number of positions (GPT-2: 5 greedy tokens), read back, first word vs target; "
             "PIXAR case-sensitive with g->q fold (union = any engine); GPT-2 case-insensitive as evaluate_gpt2.py",
    "lm-eval": "lm_eval.simple_evaluate, run-time task dicts; PIXAR via harness.models.lm_eval_adapter.PixarLM (pixel NLL, "
               "OCR read-back), GPT-2 via HFLM (token NLL)",
}
READING_NOTES = {
    "acc_reference": "accuracy of a reference rule (harness.results.reference) on the same examples, first word vs "
                     "target case-insensitively, 95% Wilson interval",
    "distinct_answers": "distinct first-word answers the model gave (case-insensitive; first reading)",
    "top_answer_share": "share of examples given the model's most frequent answer",
    "acc_union": "correct if any reading engine is (glyph or Tesseract; the paper's union had PaddleOCR, not "
                 "available offline), scored by the row's protocol, 95% Wilson interval",
    "acc_text": "GPT-2: the first whitespace token of its greedy 5 tokens vs the target, case-insensitive "
                "(evaluate_gpt2.py), 95% Wilson interval",
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


def protocol_metrics(task: str, model: str, label: str, rows: list[dict]) -> list[Metric]:
    """Scored rows -> metric rows: accuracy per reading, their union (when more than one) and readability, each a
    proportion with its 95% Wilson interval, under the protocol's label."""
    readings = list(rows[0]["correct"]) if rows else []
    flags = {f"acc_{e}": [r["correct"][e] for r in rows] for e in readings}
    if len(readings) > 1:
        flags["acc_union"] = [r["correct_union"] for r in rows]
    flags.update(readability_flags(rows))  # the paper's (union), per engine, and the strict variant
    out = []
    for metric, f in flags.items():
        iv = stats.proportion_interval(f)
        out.append(Metric(task, model, label, metric, iv.estimate, iv.n, iv.low, iv.high, "wilson95"))
    return out


def first_answer(row: dict) -> str:
    """A scored row's answer for diversity: the prediction of its first reading (protocols' scorer)."""
    pred = row.get("prediction")
    if isinstance(pred, dict):
        return str(next(iter(pred.values()), ""))
    return "" if pred is None else str(pred)


def _pixel_cuts(runner, spec, prompts):
    budget, flags = count_pixel_cuts(runner.renderer, spec, runner.P, prompts)
    return budget, "positions", flags


def _token_cuts(runner, spec, prompts):
    budget, flags = runner.prompt_cuts(spec, prompts)
    return budget, "tokens", flags


PROMPT_CUTS = {"pixar": _pixel_cuts, "gpt2": _token_cuts}  # runner kind -> how its prompts are fitted


def prompt_cuts(runner, spec, prompts: list[str]) -> tuple[int, str, list[bool]]:
    """(room, unit, per prompt: cut?) of a runner under a protocol (PROMPT_CUTS registry by runner kind)."""
    if runner.kind not in PROMPT_CUTS:
        raise ValueError(f"{runner.name}: no prompt-fit rule for model kind {runner.kind!r} (PROMPT_CUTS)")
    return PROMPT_CUTS[runner.kind](runner, spec, prompts)


def resolve_protocols(task: str, names: tuple[str, ...], context_cap: int | None = None, ocr: str | None = None):
    """CLI protocol names -> (named specs, run lm-eval?). `ocr` replaces a spec's reading engines (the protocol
    is then another one: its label says so); `context_cap` keeps at most that many context positions."""
    import dataclasses

    engines = {"glyph": ("glyph",), "tesseract": ("tesseract",), "union": ("glyph", "tesseract")}
    specs = []
    for name in names:
        if name == "lm-eval":
            continue
        spec = with_context_cap(get_protocol(task, name), context_cap)
        if ocr is not None and engines[ocr] != spec.engines:
            spec = dataclasses.replace(spec, name=f"{spec.name}[{ocr}]", engines=engines[ocr])
        specs.append(spec)
    return specs, "lm-eval" in names


class BenchRun:
    """One bench command's records: files, wide rows, metric rows, lm-eval tables; `finish` writes them."""

    def __init__(self, out: Path, bench: str, data_dir: str | None):
        self.out, self.bench, self.data_dir = Path(out), bench, data_dir
        self.files: list[Path] = []
        self.rows: list[dict] = []
        self.metrics: list[Metric] = []
        self.ids: dict[tuple, dict] = {}
        self.lm_results: list[tuple[str, dict]] = []
        self.scored: dict[tuple[str, str], list] = {}  # (task, protocol label) -> [(runner, rows, run label)]
        self.lm_tasks: dict[str, dict] = {}
        self.fits: list[dict] = []
        self.references: dict[tuple[str, str], list[dict]] = {}
        self.diversity: list[dict] = []

    def record_tasks(self, tasks: list[dict]) -> None:
        """The lm-eval task dicts, recorded in summary.json (data only: callables by their import path). No task
        files or code go into the results folder: `pixar lm-eval` (harness.cli.lm_eval) writes runnable YAML +
        utils.py for lm-eval's own CLI into a task folder it owns."""
        for t in tasks:
            self.lm_tasks[t["task"]] = {k: (f"{v.__module__}.{v.__qualname__}" if callable(v) else v)
                                        for k, v in t.items()}

    def jsonl(self, name: str, rows: list[dict]) -> None:
        self.files.append(write_jsonl(self.out / name, rows))

    def protocol(self, runner: LMRunner, task: str, spec, examples: list[dict], vocab, suffix: str = "") -> list[dict]:
        """A named paper-family protocol: per-example rows to a predictions file, Wilson-interval metric rows under
        the run's label (`+fit<N>` when it cut prompts), reference rows, answer diversity and at-chance notes."""
        if spec.text_only and runner.supports_pixels:
            return []  # a text-model protocol (GPT-2's official rules)
        rows = runner.protocol_eval(spec, examples, vocab)
        budget, unit, cuts = prompt_cuts(runner, spec, [e["prompt"] for e in examples])
        fit = {"task": task, "model": runner.name, **fit_record(spec.label, budget, unit, cuts)}
        self.fits.append(fit)
        label = fit["label"]
        self.jsonl(f"predictions-{slug(runner.name)}-{slug(label)}{suffix}.jsonl", rows)
        key = (task, spec.label)
        if key not in self.references:
            refs = reference_rows(task, [{"prompt": e["prompt"], "target": e["target"]} for e in examples])
            self.references[key] = [r.to_dict() for r in refs]
            self.metrics += [Metric(task, f"reference: {r.name}", spec.label, "acc_reference", r.interval.estimate,
                                    r.interval.n, r.interval.low, r.interval.high, "wilson95") for r in refs]
        metrics = protocol_metrics(task, runner.name, label, rows)
        for m in metrics:
            if m.metric.startswith("acc_") and is_at_chance(m.ci_low, self.references[key]):
                m.note = "at chance"
        div = diversity([first_answer(r) for r in rows])
        self.diversity.append({"task": task, "protocol": label, "model": runner.name, **div})
        metrics += [point(task, runner.name, label, "distinct_answers", div["distinct"], div["n"]),
                    point(task, runner.name, label, "top_answer_share", div["top_share"], div["n"])]
        self.metrics += metrics
        self.scored.setdefault(key, []).append((runner, rows, label))
        return rows

    def comparisons(self, seed: int) -> list[dict]:
        """Paired intervals (Newcombe) of PIXAR - GPT-2 union accuracy and readability (the paper's and the strict
        variant) on the same examples."""
        out = []
        for (task, label), scored in self.scored.items():
            for a, rows_a, label_a in scored:
                for b, rows_b, label_b in scored:
                    if not (a.supports_pixels and not b.supports_pixels):
                        continue
                    for metric in ("correct_union", "readable", "readable_strict"):
                        if rows_a[0].get(metric) is None or rows_b[0].get(metric) is None:
                            continue
                        d = paired_difference(rows_a, rows_b, metric, seed=seed)
                        out.append({"task": task, "protocol": label, "protocol_a": label_a, "protocol_b": label_b,
                                    "a": a.name, "b": b.name, "metric": metric, **d.to_dict()})
        return out

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

        df = metrics_table([m.to_json() for m in self.metrics], self.ids)
        md, csv = write_table(df, self.out)
        protocol = {k: f"{PROTOCOL_NOTES['paper' if k.startswith('paper_') else 'lm-eval']} -- {label}"
                    for k, label in METRIC_LABELS.items()}
        models_info = [{"name": m.name, "kind": m.kind, "finetuned": m.finetuned, **m.info} for m in models]
        for m in self.metrics:  # the named protocols' metric keys (their rows carry the protocol label)
            if m.metric not in protocol:
                protocol[m.metric] = READING_NOTES.get(m.metric) or metric_note(m.metric) or (
                    f"first-word accuracy of the {m.metric[4:]} reading, scored by the row's protocol "
                    "(protocol_specs: data, prompts, scorer), 95% Wilson interval")
        summary = write_summary(self.out, command=f"bench {self.bench}", protocol=protocol, config=config, seed=seed,
                                data=data, models=models_info, files=self.files + [md, csv], metrics=self.metrics,
                                data_dir=self.data_dir, rows=self.rows, comparisons=self.comparisons(seed),
                                lm_eval_tasks=self.lm_tasks, fits=self.fits,
                                references=[{"task": t, "protocol": p, "rows": r} for (t, p), r in self.references.items()],
                                diversity=self.diversity, **extra)
        for name, res in self.lm_results:
            print(f"lm-eval results: {name}")
            print(make_table(res))
        print(to_markdown(df))
        return summary


def run_lambada(checkpoint: str | None, baselines: list[str], out: Path, limit: int | None = None,
                protocols: tuple[str, ...] = ("paper", "lm-eval"), ocr: str | None = None, batch_size: int = 16,
                device: str = "cpu", data_dir: str | None = None, seed: int = 0,
                context_cap: int | None = None) -> dict:
    specs, want_lm_eval = resolve_protocols("lambada", protocols, context_cap, ocr)
    models = load_models(checkpoint, baselines, device, batch_size, ocr or "glyph", data_dir, seed)
    run = BenchRun(out, "lambada", str(resolve_data(data_dir) or "") or None)
    data: dict = {"protocols": {}}
    for spec in specs:
        examples = load_examples(spec, data_dir, seed)
        sub = examples[:limit] if limit else examples
        vocab = build_vocabulary(spec, examples, data_dir)
        data["protocols"][spec.label] = {"source": examples[0]["source"].rsplit(":", 1)[0] if examples else None,
                                         "n_total": len(examples), "n_evaluated": len(sub)}
        for runner in models:
            run.protocol(runner, "lambada", spec, sub, vocab)
    if want_lm_eval:
        texts, path = lambada.load_lambada(data_dir), lambada.lambada_path(data_dir)
        tasks = [lambada.lm_eval_task(path)]
        run.record_tasks(tasks)
        n = min(limit, len(texts)) if limit else len(texts)
        data["lm-eval"] = {"source": str(path) if path else "hf:EleutherAI/lambada_openai", "n_total": len(texts),
                           "n_evaluated": n}
        for runner in models:
            row = runner.id_columns("lambada", n, ocr or "glyph")
            run.lm_eval(runner, row, tasks, limit, batch_size, seed)
            run.add_row(runner, row)
    config = {"checkpoint": checkpoint, "baselines": baselines, "limit": limit, "protocols": list(protocols),
              "ocr": ocr, "batch_size": batch_size, "device": device, "data_dir": data_dir, "seed": seed,
              "context_cap": context_cap}
    return run.finish(models, config, seed, data, protocols=list(protocols),
                      protocol_specs={s.label: s.to_dict() for s in specs})


def run_babi(checkpoint: str | None, baselines: list[str], out: Path, tasks: str = "1", variant: str = "en",
             babi_folder: str | None = None, limit: int | None = None, protocols: tuple[str, ...] = ("paper", "lm-eval"),
             ocr: str | None = None, batch_size: int = 16, device: str = "cpu", data_dir: str | None = None,
             seed: int = 0, finetune=None, context_cap: int | None = None) -> dict:
    """finetune: a harness.models.finetune.TaskFinetuneConfig to train each model on each task's train split first."""
    specs, want_lm_eval = resolve_protocols("babi", protocols, context_cap, ocr)
    task_ids = babi.parse_task_list(tasks)
    for t in task_ids:  # the arguments first, then the data
        for spec in specs:
            check_task(spec, t)
    folder = babi.babi_dir(variant, data_dir, babi_folder)
    plan = {}
    for t in task_ids:  # fail early, before any model work
        babi.babi_file(t, "test", folder)
        if finetune is not None:
            babi.babi_file(t, "train", folder)
        plan[t] = []
        for spec in specs:  # examples and their vocabulary once per (task, protocol), shared by every model
            examples = load_examples(spec, data_dir, seed, babi_folder, task=t, variant=variant)
            plan[t].append((spec, examples, build_vocabulary(spec, examples, data_dir)))
    models = load_models(checkpoint, baselines, device, batch_size, ocr or "glyph", data_dir, seed)
    run = BenchRun(out, "babi", str(resolve_data(data_dir) or "") or None)
    counts = {}
    for t in task_ids:
        name = babi.task_name(t, folder)
        test = babi.load_babi(t, "test", folder)
        train_pairs = ([(q.paper_prompt(), q.answer) for q in babi.load_babi(t, "train", folder)]
                       if finetune is not None else [])
        task_dicts = [babi.lm_eval_task(t, babi.babi_file(t, "test", folder), max_gen_toks=16)] if want_lm_eval else []
        if task_dicts:
            run.record_tasks(task_dicts)
        for spec, examples, _ in plan[t]:
            counts[f"qa{t} {spec.label}"] = {"n_total": len(examples), "n_evaluated": len(examples[:limit] if limit else examples)}
        if want_lm_eval:
            counts[f"qa{t} lm-eval"] = {"n_total": len(test), "n_evaluated": min(limit or len(test), len(test))}
        for base in models:
            runner = base.finetune(train_pairs, finetune) if finetune is not None else base
            suffix = f"-qa{t}"
            if runner.finetuned:
                run.jsonl(f"finetune-{slug(runner.name)}{suffix}.jsonl", runner.finetune_log)
            for spec, examples, vocab in plan[t]:
                run.protocol(runner, f"babi {name}", spec, examples[:limit] if limit else examples, vocab, suffix)
            if want_lm_eval:
                row = runner.id_columns(f"babi {name} ({folder.name})", counts[f"qa{t} lm-eval"]["n_evaluated"],
                                        ocr or "glyph")
                run.lm_eval(runner, row, task_dicts, limit, batch_size, seed, suffix)
                run.add_row(runner, row)
    config = {"checkpoint": checkpoint, "baselines": baselines, "tasks": tasks, "variant": variant,
              "babi_dir": babi_folder, "limit": limit, "protocols": list(protocols), "ocr": ocr,
              "batch_size": batch_size, "device": device, "data_dir": data_dir, "seed": seed,
              "context_cap": context_cap, "finetune": None if finetune is None else vars(finetune)}
    return run.finish(models, config, seed, {"source": str(folder), "tasks": counts}, protocols=list(protocols),
                      protocol_specs={s.label: s.to_dict() for s in specs},
                      finetune=None if finetune is None else vars(finetune))
