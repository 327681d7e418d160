"""`pixar bench lambada|babi`: run PIXAR and GPT-2 baselines through both protocols and record everything.

Protocols (never mixed in one column; see harness.tables):
  paper    PIXAR: render the prompt, space it (3 px), greedily generate a fixed number of positions
           (LAMBADA 4, bAbI 5; no EOS stop), read back with the OCR engine(s), score the first word
           (pixar.ocr.score_first_word: leading alphabetic run, g->q fold, case-sensitive; union = any
           engine). GPT-2: greedy 5 tokens, first word (case-insensitive as the official evaluate_gpt2.py,
           and case-sensitive). Readability = the first word read is an English word (pixar.wordlist).
           For bAbI's comma-list answers (tasks 8, 19) the first items are compared.
  lm-eval  lm_eval.simple_evaluate on run-time task dicts (harness.tasks.*), TaskManager(include_defaults=
           False), offline: PixarLM for PIXAR, HFLM(pretrained=<model>) for GPT-2.

Outputs under --out: predictions-<model>-<protocol>[-<task>].jsonl, lm-eval-<model>.json, summary.json
(args, seed, versions, protocols, data, models, rows), table.md + table.csv, tasks/*.yaml.
"""
from __future__ import annotations

import copy
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pixar.config import atomic_write_text

log = logging.getLogger(__name__)
PAPER_POSITIONS = {"lambada": 4, "babi": 5}
GEN_CHUNK = 128  # examples per generate + read call in the paper protocol


@dataclass
class BenchModel:
    name: str
    kind: str  # "pixar" | "gpt2"
    info: dict
    lm: Any = None  # harness.lm.PixarLM
    hf_model: Any = None
    tokenizer: Any = None
    finetuned: bool = False
    extra: dict = field(default_factory=dict)

    def lm_eval_model(self, batch_size: int):
        if self.kind == "pixar":
            return self.lm
        from .baselines import gpt2_lm

        return gpt2_lm(self.hf_model, self.tokenizer, batch_size)

    def id_columns(self, task: str, n: int, ocr: str) -> dict:
        return {"task": task, "model": self.name, "kind": self.kind, "params": self.info.get("params"),
                "non-embedding params": self.info.get("non_embedding_params"), "match": self.info.get("match", ""),
                "finetuned": self.finetuned, "ocr": ocr if self.kind == "pixar" else "", "n": n}


def _short_name(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def load_models(checkpoint: str | None, baselines: list[str], device: str, batch_size: int, ocr: str,
                data_dir: str | None, seed: int) -> list[BenchModel]:
    models = []
    if checkpoint:
        from pixar.checkpoint import latest_checkpoint

        from .lm import PixarLM

        if not (Path(checkpoint) / "model.safetensors").exists() and (Path(checkpoint) / "last").is_file():
            checkpoint = str(latest_checkpoint(checkpoint))  # a run folder: its latest checkpoint
        lm = PixarLM(checkpoint=checkpoint, batch_size=batch_size, device=device, ocr=ocr, seed=seed)
        non_emb = lm.model.num_params() - lm.model.embed.weight.numel() - lm.model.head.weight.numel()
        info = {**lm.get_model_info(), "non_embedding_params": non_emb, "name": lm.config.name,
                "config": lm.config.to_dict()}
        models.append(BenchModel(f"pixar:{_short_name(checkpoint)}", "pixar", info, lm=lm))
    for spec in baselines:
        from .baselines import load_gpt2

        model, tok, info = load_gpt2(spec, device, data_dir)
        info = {**info, "config": model.config.to_diff_dict()}
        models.append(BenchModel(f"gpt2:{info['name']}", "gpt2", info, hf_model=model, tokenizer=tok))
    if not models:
        raise ValueError("nothing to evaluate: pass --checkpoint and/or --baseline")
    return models


def finetuned_copy(bm: BenchModel, pairs: list[tuple[str, str]], fc, device: str) -> BenchModel:
    """A copy of bm fine-tuned on (prompt, answer) pairs (the base model stays untouched for the next task)."""
    from .finetune import finetune_gpt2, finetune_pixar

    new = copy.copy(bm)
    if bm.kind == "pixar":
        from .lm import PixarLM

        new.lm = PixarLM(model=copy.deepcopy(bm.lm.model), config=bm.lm.config, batch_size=bm.lm.batch_size,
                         device=device, ocr=bm.lm.ocr, seed=bm.lm.seed)
        new.lm.checkpoint = bm.lm.checkpoint
        new.extra = {"finetune_log": finetune_pixar(new.lm, pairs, fc)}
    else:
        model = copy.deepcopy(bm.hf_model)
        new.extra = {"finetune_log": finetune_gpt2(model, bm.tokenizer, [f"{p} {a}" for p, a in pairs], fc, device)}
        new.hf_model = model
    new.finetuned = True
    return new


# ---- paper protocol ------------------------------------------------------------------------------
def paper_eval(bm: BenchModel, examples: list[dict], n_positions: int, readability, batch_size: int) -> tuple[dict, list[dict]]:
    """examples: {'idx', 'prompt', 'target'} -> (metrics, per-example prediction rows)."""
    from tqdm import tqdm

    from pixar import ocr

    rows: list[dict] = []
    if bm.kind == "pixar":
        lm = bm.lm
        engines = lm._engines()
        for start in tqdm(range(0, len(examples), GEN_CHUNK), desc=f"paper {bm.name}", unit="chunk"):
            chunk = examples[start: start + GEN_CHUNK]
            ctx = lm.context_positions([e["prompt"] for e in chunk], [lm.P - n_positions] * len(chunk))
            strips = lm.generate_positions(ctx, [n_positions] * len(chunk), stop_at_eos=False)
            reads = lm.read(strips)
            for j, e in enumerate(chunk):
                gold = ocr.first_word(e["target"])
                texts = {eng: reads[eng][j] for eng in engines}
                row = {"idx": e["idx"], "target": e["target"], "context_positions": int(ctx[j].shape[0]), "read": texts,
                       "first_word": {eng: ocr.first_word(t) for eng, t in texts.items()},
                       "correct": {eng: ocr.score_first_word(t, gold) for eng, t in texts.items()}}
                if len(engines) > 1:
                    row["correct_union"] = ocr.union_correct(texts, gold)
                if readability is not None:
                    row["readable"] = readability.is_readable_any(texts.values())
                rows.append(row)
        n = max(len(rows), 1)
        metrics = {f"paper_acc_{eng}": sum(r["correct"][eng] for r in rows) / n for eng in engines}
        if len(engines) > 1:
            metrics["paper_acc_union"] = sum(r["correct_union"] for r in rows) / n
        if readability is not None:
            metrics["paper_readability"] = sum(r["readable"] for r in rows) / n
        return metrics, rows
    from .baselines import PAPER_NEW_TOKENS, greedy_continuations

    texts = greedy_continuations(bm.hf_model, bm.tokenizer, [e["prompt"] for e in examples], PAPER_NEW_TOKENS, batch_size)
    for e, text in zip(examples, texts):
        fw, gold = ocr.first_word(text), ocr.first_word(e["target"])
        row = {"idx": e["idx"], "target": e["target"], "text": text, "first_word": fw,
               "correct_ci": bool(gold) and fw.lower() == gold.lower(), "correct_cs": bool(gold) and fw == gold}
        if readability is not None:
            row["readable"] = readability.is_readable(text)
        rows.append(row)
    n = max(len(rows), 1)
    metrics = {"paper_acc_ci": sum(r["correct_ci"] for r in rows) / n, "paper_acc_cs": sum(r["correct_cs"] for r in rows) / n}
    if readability is not None:
        metrics["paper_readability_text"] = sum(r["readable"] for r in rows) / n
    return metrics, rows


def make_readability(data_dir: str | None, texts: list[str]):
    """pixar.wordlist readability over the corpus words + the dataset's words; None (logged) without a corpus."""
    from pixar.ocr import Readability, build_wordlist
    from pixar.paths import DataNotFound

    try:
        return Readability(build_wordlist(data_dir, extra_texts=texts))
    except (DataNotFound, ValueError) as e:
        log.warning("readability skipped: %s", e)
        return None


# ---- lm-eval protocol ----------------------------------------------------------------------------
def lm_eval_eval(bm: BenchModel, tasks: list[dict], limit: int | None, batch_size: int, seed: int) -> dict:
    """simple_evaluate on run-time task dicts; returns lm-eval's result dict (samples included)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(model=bm.lm_eval_model(batch_size), tasks=copy.deepcopy(tasks),
                                   task_manager=TaskManager(include_defaults=False), limit=limit,
                                   bootstrap_iters=1000, log_samples=True, random_seed=seed,
                                   numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)


def lm_eval_metrics(bm: BenchModel, task_result: dict) -> dict:
    """lm-eval result keys -> our labelled metric keys (units by model kind)."""
    out = {}
    pix = bm.kind == "pixar"
    if "acc,none" in task_result:
        out["lm_eval_acc_ocr" if pix else "lm_eval_acc_token"] = task_result["acc,none"]
    if "nll,none" in task_result:
        out["lm_eval_pixel_nll" if pix else "lm_eval_token_nll"] = task_result["nll,none"]
    if "perplexity,none" in task_result:
        out["lm_eval_pixel_ppl" if pix else "lm_eval_token_ppl"] = task_result["perplexity,none"]
    for k, v in task_result.items():
        if k.startswith("exact_match,") and "stderr" not in k:
            out["lm_eval_exact_match"] = v
    return out


def sample_rows(samples: list[dict]) -> list[dict]:
    keep = ("doc_id", "target", "resps", "filtered_resps", "acc", "nll", "exact_match")
    return [{k: s[k] for k in keep if k in s} for s in samples]


# ---- records -------------------------------------------------------------------------------------
def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("pixar-harness", "torch", "transformers", "lm-eval", "datasets", "numpy", "pandas", "pytesseract"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    return path


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def finish(out: Path, bench: str, args: dict, rows: list[dict], models: list[BenchModel], extra: dict,
           lm_eval_results: list[tuple[str, dict]], files: list[Path]) -> dict:
    """Write summary.json + table.md/.csv, print lm-eval's tables and ours; return the summary."""
    from lm_eval.utils import make_table

    from .tables import comparison_table, to_markdown, write_table

    df = comparison_table(rows)
    md, csv = write_table(df, out)
    summary = {"benchmark": bench, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv),
               "args": args, "seed": args.get("seed"), "versions": versions(),
               "models": [{"name": m.name, "kind": m.kind, **m.info} for m in models], **extra, "rows": rows,
               "files": sorted({str(p.relative_to(out)) for p in files + [md, csv]})}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    for name, res in lm_eval_results:
        print(f"lm-eval results: {name}")
        print(make_table(res))
    print(to_markdown(df))
    return summary


# ---- benchmarks ------------------------------------------------------------------------------------
def _record_tasks(out: Path, tasks: list[dict]) -> list[Path]:
    """The task dicts as lm-eval YAML (+ utils.py) under out/tasks: `lm_eval --include_path out/tasks` reruns them."""
    from .tasks.common import write_task_yaml

    return write_task_yaml(tasks, out / "tasks") + [out / "tasks" / "utils.py"]


def _run_lm_eval(bm: BenchModel, tasks: list[dict], limit, batch_size, seed, out: Path, files: list[Path],
                 lm_results: list[dict], suffix: str = "") -> dict[str, dict]:
    res = lm_eval_eval(bm, tasks, limit, batch_size, seed)
    samples = res.pop("samples", {})
    for task_name, task_samples in samples.items():
        files.append(write_jsonl(out / f"predictions-{slug(bm.name)}-lm-eval-{task_name}.jsonl",
                                 sample_rows(task_samples)))
    path = out / f"lm-eval-{slug(bm.name)}{suffix}.json"
    atomic_write_text(path, json.dumps(res, indent=2, default=str))
    files.append(path)
    lm_results.append((bm.name, res))
    return {name: lm_eval_metrics(bm, r) for name, r in res["results"].items()}


PROTOCOL_NOTES = {
    "paper": "generate a fixed number of positions (GPT-2: 5 greedy tokens), read back, first word vs target; "
             "PIXAR case-sensitive with g->q fold (union = any engine); GPT-2 case-insensitive as evaluate_gpt2.py",
    "lm-eval": "lm_eval.simple_evaluate, run-time task dicts; PIXAR via harness.lm.PixarLM (pixel NLL, "
               "OCR read-back), GPT-2 via HFLM (token NLL)",
}


def run_lambada(checkpoint: str | None, baselines: list[str], out: Path, limit: int | None = None,
                protocols: tuple[str, ...] = ("paper", "lm-eval"), ocr: str = "glyph", batch_size: int = 16,
                device: str = "cpu", data_dir: str | None = None, seed: int = 0, positions: int = 4) -> dict:
    from .tasks import lambada

    texts = lambada.load_lambada(data_dir)
    path = lambada.lambada_path(data_dir)
    sub = texts[:limit] if limit else texts
    models = load_models(checkpoint, baselines, device, batch_size, ocr, data_dir, seed)
    tasks = [lambada.lm_eval_task(path)]
    files = _record_tasks(out, tasks)
    readability = make_readability(data_dir, texts) if "paper" in protocols else None
    rows, lm_results = [], []
    for bm in models:
        row = bm.id_columns("lambada", len(sub), ocr)
        if "paper" in protocols:
            metrics, preds = paper_eval(bm, lambada.paper_examples(sub), positions, readability, batch_size)
            files.append(write_jsonl(out / f"predictions-{slug(bm.name)}-paper.jsonl", preds))
            row.update(metrics)
        if "lm-eval" in protocols:
            row.update(_run_lm_eval(bm, tasks, limit, batch_size, seed, out, files, lm_results)[tasks[0]["task"]])
        rows.append(row)
    extra = {"protocols": list(protocols), "protocol_notes": {p: PROTOCOL_NOTES[p] for p in protocols},
             "paper_positions": positions, "ocr": ocr,
             "data": {"source": str(path) if path else "hf:EleutherAI/lambada_openai", "n_total": len(texts),
                      "n_evaluated": len(sub)}}
    args = {"checkpoint": checkpoint, "baselines": baselines, "limit": limit, "protocols": list(protocols), "ocr": ocr,
            "batch_size": batch_size, "device": device, "data_dir": data_dir, "seed": seed, "positions": positions}
    return finish(out, "lambada", args, rows, models, extra, lm_results, files)


def run_babi(checkpoint: str | None, baselines: list[str], out: Path, tasks: str = "1", variant: str = "en",
             babi_folder: str | None = None, limit: int | None = None, protocols: tuple[str, ...] = ("paper", "lm-eval"),
             ocr: str = "glyph", batch_size: int = 16, device: str = "cpu", data_dir: str | None = None, seed: int = 0,
             positions: int = 5, finetune=None) -> dict:
    """finetune: a harness.finetune.FinetuneConfig to train each model on each task's train split first."""
    from .tasks import babi

    task_ids = babi.parse_task_list(tasks)
    folder = babi.babi_dir(variant, data_dir, babi_folder)
    for t in task_ids:  # fail early, before any model work
        babi.babi_file(t, "test", folder)
        if finetune is not None:
            babi.babi_file(t, "train", folder)
    models = load_models(checkpoint, baselines, device, batch_size, ocr, data_dir, seed)
    rows, lm_results, files, counts = [], [], [], {}
    for t in task_ids:
        test = babi.load_babi(t, "test", folder)
        sub = test[:limit] if limit else test
        counts[f"qa{t}"] = {"n_total": len(test), "n_evaluated": len(sub)}
        name = babi.task_name(t, folder)
        task_dicts = [babi.lm_eval_task(t, babi.babi_file(t, "test", folder), max_gen_toks=16)]
        files += _record_tasks(out, task_dicts)
        train_pairs = ([(q.paper_prompt(), q.answer) for q in babi.load_babi(t, "train", folder)]
                       if finetune is not None else [])
        readability = (make_readability(data_dir, [q.finetune_text() for q in test])
                       if "paper" in protocols else None)
        examples = [{"idx": i, "prompt": q.paper_prompt(), "target": q.answer} for i, q in enumerate(sub)]
        for base in models:
            bm = finetuned_copy(base, train_pairs, finetune, device) if finetune is not None else base
            suffix = f"-qa{t}"
            if bm.finetuned:
                files.append(write_jsonl(out / f"finetune-{slug(bm.name)}{suffix}.jsonl", bm.extra["finetune_log"]))
            row = bm.id_columns(f"babi {name} ({folder.name})", len(sub), ocr)
            if "paper" in protocols:
                metrics, preds = paper_eval(bm, examples, positions, readability, batch_size)
                files.append(write_jsonl(out / f"predictions-{slug(bm.name)}-paper{suffix}.jsonl", preds))
                row.update(metrics)
            if "lm-eval" in protocols:
                row.update(_run_lm_eval(bm, task_dicts, limit, batch_size, seed, out, files, lm_results, suffix)
                           [task_dicts[0]["task"]])
            rows.append(row)
    extra = {"protocols": list(protocols), "protocol_notes": {p: PROTOCOL_NOTES[p] for p in protocols},
             "paper_positions": positions, "ocr": ocr, "data": {"source": str(folder), "tasks": counts},
             "finetune": None if finetune is None else vars(finetune)}
    args = {"checkpoint": checkpoint, "baselines": baselines, "tasks": tasks, "variant": variant, "babi_dir": babi_folder,
            "limit": limit, "protocols": list(protocols), "ocr": ocr, "batch_size": batch_size, "device": device,
            "data_dir": data_dir, "seed": seed, "positions": positions}
    return finish(out, "babi", args, rows, models, extra, lm_results, files)
