"""The reliability probe table (issue 23): adversarial inputs to every `pixar` command, each with the exit code
and the one-line message it must give, run in-process through click's CliRunner against a small world of
fixtures (a pixar-micro checkpoint, a run folder, a prepared dataset, a data folder, a tiny GPT-2).

Each probe is classified by `run_probe`:
    clean      the expected exit code, one `Error: ...` line matching the probe's regex, no traceback
    traceback  an exception escaped the command (a traceback where one line is due)
    silent     exit 0 where a refusal was due (or the wrong exit code)
    loss       a file that existed before the command was changed or removed
    unclear    the right exit code but a message that does not match (or more than one error line)

tests/test_probes.py asserts every probe is clean; `python tests/probes.py` prints the table by category
(category | probes | clean | traceback | silent | loss | unclear), the count the issue's closing note reports.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CATEGORIES = ("bad input", "corruption", "faults", "security", "load/memory")
SENTENCES = ["The cat sat on the mat near the door.", "A quiet river ran past the old mill at dawn.",
             "She opened the window and looked at the hills.", "Nobody knew where the road would lead them.",
             "He wrote a long letter to his brother in the city.", "The children played in the garden until dark."]


@dataclass
class Probe:
    id: str
    category: str
    args: list[str]  # `{w}` = the probe's world folder
    message: str  # regex the error line must match (searched in the output)
    code: int = 1  # 1 = click.ClickException (one line), 2 = a usage error (click's own bounds)
    setup: Callable[[Path], None] | None = None
    patch: Callable[[object], None] | None = None  # gets pytest's monkeypatch-like object (see run_probe)


# ---- the world ---------------------------------------------------------------------------------------------
def build_world(root: Path) -> Path:
    """The shared fixtures, built once (copied for each probe so no probe sees another's leftovers)."""
    import torch

    from safetensors.torch import save_file

    from pixar.checkpoint.official import pixar_to_official
    from pixar.checkpoint.store import save_checkpoint, save_step_checkpoint
    from pixar.config import PixarConfig, preset_path
    from pixar.data.prepare import packing_config, prepare
    from pixar.model.transformer import Pixar

    root.mkdir(parents=True, exist_ok=True)
    text = "\n".join(" ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(4)) for i in range(60))
    (root / "corpus.txt").write_text(text + "\n")
    (root / "empty.txt").write_text("")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 8)
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"), [f"train.data=[{root / 'corpus.txt'}]",
                                                             "train.steps=2", "train.save_every=1"])
    torch.manual_seed(0)
    model = Pixar(cfg.model)
    save_checkpoint(root / "ckpt", model, cfg, meta={"step": 0})
    for step in (1, 2):
        save_step_checkpoint(root / "run", step, model, cfg, state={"step": step}, meta={"kind": "pixar"})
    (root / "run" / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2)))
    (root / "run" / "config.yaml").write_text(cfg.to_yaml())
    prepare([str(root / "corpus.txt")], root / "prepared", packing_config(cfg.train))
    data = root / "data"
    (data / "lambada").mkdir(parents=True)
    (data / "lambada" / "lambada_test.jsonl").write_text(
        "".join(json.dumps({"text": s}) + "\n" for s in SENTENCES))
    (data / "lambada" / "lambada_test_plain_text.txt").write_text("\n".join(s.lower() for s in SENTENCES) + "\n")
    babi = data / "babi" / "tasks_1-20_v1-2" / "en"
    babi.mkdir(parents=True)
    story = "1 Mary went to the kitchen.\n2 John went to the garden.\n3 Where is Mary?\tkitchen\t1\n"
    for split in ("train", "test"):
        (babi / f"qa1_single-supporting-fact_{split}.txt").write_text(story * 3)
    _tiny_gpt2(root / "gpt2")
    official = root / "official"  # the same weights in the official april-tools/pixar layout
    official.mkdir()
    (official / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                                      "intermediate_size": 192}))
    save_file({k: v.contiguous() for k, v in pixar_to_official(model.state_dict(), cfg.model).items()},
              str(official / "model.safetensors"))
    return root


def _tiny_gpt2(folder: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_embd=16, n_layer=1, n_head=2, n_positions=32)).save_pretrained(
        str(folder), safe_serialization=True)


# ---- setups ------------------------------------------------------------------------------------------------
def write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    return setup


def truncate(rel: str, keep: int) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        p.write_bytes(p.read_bytes()[:keep])
    return setup


def edit_json(rel: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        d = json.loads(p.read_text())
        fn(d)
        p.write_text(json.dumps(d))
    return setup


def chain(*setups) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        for s in setups:
            s(w)
    return setup


def _set(path: list[str], value) -> Callable[[dict], None]:
    def fn(d: dict) -> None:
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return fn


def _flip_shard_bytes(w: Path) -> None:
    """Same-size edit of the first train shard (its size still matches the manifest)."""
    shard = next((w / "prepared" / "train").glob("data-*.arrow"))
    raw = bytearray(shard.read_bytes())
    i = raw.rfind(b"cat")
    raw[i:i + 3] = b"dog"
    shard.write_bytes(bytes(raw))


def _ff_shard(w: Path) -> None:
    shard = next((w / "prepared" / "train").glob("data-*.arrow"))
    shard.write_bytes(b"\xff" * shard.stat().st_size)


def _escape_shard(w: Path) -> None:
    other = w / "other"
    shutil.copytree(w / "prepared", other)
    m = json.loads((w / "prepared" / "manifest.json").read_text())
    m["splits"]["train"]["shards"][0]["file"] = "../other/" + m["splits"]["train"]["shards"][0]["file"]
    (w / "prepared" / "manifest.json").write_text(json.dumps(m))


def _bin_only(w: Path) -> None:
    (w / "official" / "model.safetensors").unlink()


def _no_last(w: Path) -> None:
    (w / "run" / "last").unlink()


def _stale_last_pointer(w: Path) -> None:
    (w / "run" / "last").write_text(json.dumps({"step": 10, "path": "../base/step-0000010"}))
    shutil.copytree(w / "run", w / "base")


def _nested_config(w: Path) -> None:
    (w / "ckpt" / "config.json").write_text("[" * 100000 + "]" * 100000)


def _lock_prepare(w: Path) -> None:
    """Another live process (this test's parent, pid 1's stand-in: our own parent pid) holds the prepare lock."""
    lock = w / "prepared.lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": "2026-01-01T00:00:00Z",
                                "argv": ["pixar", "data", "prepare"]}))


def _enospc_save(mp) -> None:
    """Disk full mid-checkpoint: safetensors' writer fails as it does on a full disk."""
    from safetensors import SafetensorError

    import pixar.checkpoint.store as store

    def full(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')
    mp.setattr(store, "save_file", full)


def _erofs_png(mp) -> None:
    """A read-only output folder (as root, chmod cannot make one): the temp file cannot be created."""
    import errno
    import tempfile

    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")
    mp.setattr(tempfile, "mkstemp", ro)


W = "{w}"
CKPT, RUN, DATA, PREP = f"{W}/ckpt", f"{W}/run", f"{W}/data", f"{W}/prepared"
MICRO = ["--config", "pixar-micro", "--set", f"train.data=[{W}/corpus.txt]", "--set", "train.steps=2"]
TRAIN = ["train", "--out", f"{W}/new-run", "--device", "cpu"]
ON_PREP = ["--config", "pixar-micro", "--set", f"train.data={PREP}", "--set", "train.steps=2"]
GEN = ["generate", "--checkpoint", CKPT, "hello", "-o", f"{W}/g.png"]
BENCH_L = ["bench", "lambada", "--checkpoint", CKPT, "--data-dir", DATA, "--protocol", "lm-eval", "--limit", "1",
           "--out", f"{W}/bench-out"]
BENCH_B = ["bench", "babi", "--checkpoint", CKPT, "--data-dir", DATA, "--protocol", "paper", "--limit", "1",
           "--out", f"{W}/bench-out"]
PREPARE = ["data", "prepare", f"{W}/corpus.txt", "--out", f"{W}/new-data"]
EVIL_YAML = "render: !!python/object/apply:os.system ['touch {w}/pwned']\n"

P = Probe
PROBES: list[Probe] = [
    # ---- bad input: sizes and values a user can type -----------------------------------------------------------
    P("render-scale-0", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--scale", "0"], r"--scale.*range", 2),
    P("render-scale-neg", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--scale", "-3"], r"--scale.*range", 2),
    P("render-config-glue", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--config", "glue/paper"],
      r"glue/paper.*(not found|unknown key)"),
    P("render-config-bad-yaml", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--config", f"{W}/bad.yaml"],
      r"bad\.yaml: invalid YAML", setup=write("bad.yaml", "render: [unclosed\n")),
    P("render-config-list", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--config", f"{W}/l.yaml"],
      r"l\.yaml: top level must be a mapping", setup=write("l.yaml", "- a\n- b\n")),
    P("render-config-missing", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--config", "no-such-preset"],
      r"no-such-preset\.yaml: config file not found"),
    P("render-font-passwd-config", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--config", f"{W}/f.yaml"],
      r"/etc/passwd: not a usable font file", setup=write("f.yaml", "render: {font: /etc/passwd}\n")),
    P("render-font-passwd", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--font", "/etc/passwd"],
      r"/etc/passwd: not a usable font file"),
    P("generate-n-neg", "bad input", GEN + ["-n", "-5"], r"-n.*range", 2),
    P("generate-n-0", "bad input", GEN + ["-n", "0"], r"-n.*range", 2),
    P("generate-temp-0", "bad input", GEN + ["--temperature", "0"], r"--temperature.*range", 2),
    P("generate-temp-neg", "bad input", GEN + ["--temperature", "-1"], r"--temperature.*range", 2),
    P("generate-temp-nan", "bad input", GEN + ["--temperature", "nan"], r"--temperature.*(finite|range)", 2),
    P("generate-device-bogus", "bad input", GEN + ["--device", "bogus"], r"--device 'bogus': not a device"),
    P("generate-device-cuda", "bad input", GEN + ["--device", "cuda:7"], r"--device cuda:7: no such CUDA device"),
    P("generate-scale-0", "bad input", GEN + ["--scale", "0"], r"--scale.*range", 2),
    P("prepare-max-chars-neg", "bad input", PREPARE + ["--max-chars", "-5"], r"train\.max_chars must be"),
    P("prepare-min-over-max", "bad input", PREPARE + ["--max-chars", "50", "--min-chars", "60"],
      r"min_chars \(60\) must not exceed"),
    P("prepare-min-chars-neg", "bad input", PREPARE + ["--min-chars", "-1"], r"train\.min_chars must be"),
    P("prepare-val-fraction", "bad input", PREPARE + ["--val-fraction", "1.5"], r"val_fraction must be in \[0, 1\)"),
    P("prepare-num-proc-0", "bad input", PREPARE + ["--num-proc", "0"], r"--num-proc.*range", 2),
    P("prepare-missing-source", "bad input", ["data", "prepare", f"{W}/nope.txt", "--out", f"{W}/new-data"],
      r"nope\.txt"),
    P("train-batch-0", "bad input", TRAIN + MICRO + ["--set", "train.batch_size=0"], r"batch_size"),
    P("train-batch-neg", "bad input", TRAIN + MICRO + ["--set", "train.batch_size=-1"], r"batch_size"),
    P("train-warmup-neg", "bad input", TRAIN + MICRO + ["--set", "train.warmup_steps=-10"], r"train\.warmup_steps must be"),
    P("train-grad-clip-nan", "bad input", TRAIN + MICRO + ["--set", "train.grad_clip=.nan"], r"train\.grad_clip must be"),
    P("train-lr-nan", "bad input", TRAIN + MICRO + ["--set", "train.lr=.nan"], r"train\.lr must be"),
    P("train-lr-nan-word", "bad input", TRAIN + MICRO + ["--set", "train.lr=nan"], r"train\.lr must be"),
    P("train-lr-neg", "bad input", TRAIN + MICRO + ["--set", "train.lr=-1"], r"train\.lr must be"),
    P("train-lr-huge", "bad input", TRAIN + MICRO + ["--set", "train.lr=1e300"], r"train\.lr must be"),
    P("train-max-chars-0", "bad input", TRAIN + MICRO + ["--set", "train.max_chars=0"], r"train\.max_chars must be"),
    P("train-adv-lr-nan", "bad input", TRAIN + MICRO + ["--set", "adv.lr_g=.nan"], r"adv\.lr_g must be"),
    P("train-data-empty", "bad input", TRAIN + MICRO + ["--set", "train.data=[]"], r"train\.data must be a non-empty"),
    P("train-data-string", "bad input", TRAIN + MICRO + ["--set", "train.data=/no/such/corpus"],
      r"/no/such/corpus.*(not found|no such)"),
    P("train-config-empty", "bad input", TRAIN + ["--config", f"{W}/empty.txt"], r"empty\.txt: empty config file"),
    P("train-config-text", "bad input", TRAIN + ["--config", f"{W}/corpus.txt"], r"corpus\.txt: top level must be a mapping"),
    P("train-override-bad-yaml", "bad input", TRAIN + MICRO + ["--set", "train.lr=[1"], r"override 'train\.lr=\[1'"),
    P("train-device-bogus", "bad input", TRAIN + MICRO + ["--device", "bogus"], r"--device 'bogus': not a device"),
    P("train-device-cuda", "bad input", TRAIN + MICRO + ["--device", "cuda:7"], r"--device cuda:7: no such CUDA device"),
    P("train-resume-config-change", "bad input",
      ["train", "--out", RUN, "--device", "cpu", "--resume", "auto", "--config", f"{W}/run/config.yaml",
       "--set", "train.lr=0.01"], r"train config differs from the checkpoint's.*lr.*--allow-config-change"),
    P("train-resume-data-change", "bad input",
      ["train", "--out", RUN, "--device", "cpu", "--resume", "auto", "--config", f"{W}/run/config.yaml",
       "--set", f"train.data=[{W}/empty.txt]"], r"train config differs.*data"),
    P("bench-batch-0", "bad input", BENCH_L + ["--batch-size", "0"], r"--batch-size.*range", 2),
    P("bench-batch-neg", "bad input", BENCH_L + ["--batch-size", "-1"], r"--batch-size.*range", 2),
    P("bench-limit-neg", "bad input", BENCH_L[:-4] + ["--limit", "-5"], r"--limit.*(range|positive)", 2),
    P("bench-babi-tasks-reversed", "bad input", BENCH_B + ["--tasks", "5-2"], r"'5-2' is a reversed \(empty\) range"),
    P("bench-context-cap-neg", "bad input", BENCH_L + ["--context-cap", "-1"], r"--context-cap.*range", 2),
    P("bench-device-bogus", "bad input", BENCH_L + ["--device", "bogus"], r"--device 'bogus': not a device"),
    P("attack-positions-0", "bad input", ["attack", "--checkpoint", CKPT, "--task", "babi", "--positions", "0"],
      r"--positions.*range", 2),
    P("attack-device-bogus", "bad input", ["attack", "--checkpoint", CKPT, "--task", "babi", "--device", "bogus",
                                           "--out", f"{W}/att"], r"--device 'bogus': not a device"),
    P("attack-threads-neg", "bad input", ["attack", "--checkpoint", CKPT, "--threads", "-2"], r"--threads.*range", 2),
    P("glue-limit-dev-neg", "bad input", ["bench", "glue", "--checkpoint", CKPT, "--task", "sst2", "--limit-dev", "-1"],
      r"--limit-dev.*range", 2),
    P("convert-max-positions-0", "bad input", ["convert", f"{W}/official", "-o", f"{W}/conv", "--max-positions", "0"],
      r"--max-positions.*range", 2),
    P("train-resume-bogus", "bad input", TRAIN + MICRO + ["--resume", "maybe"], r"--resume.*maybe", 2),
    P("train-set-not-kv", "bad input", TRAIN + MICRO + ["--set", "train.lr"], r"override 'train\.lr' must look like key=value"),
    P("train-set-unknown-key", "bad input", TRAIN + MICRO + ["--set", "train.lrr=1"], r"unknown key\(s\) \['lrr'\]"),
    P("train-steps-neg", "bad input", TRAIN + MICRO + ["--set", "train.steps=-1"], r"train\.steps must be"),
    P("train-val-fraction-1", "bad input", TRAIN + MICRO + ["--set", "train.val_fraction=1"], r"val_fraction must be in"),
    P("train-beta-2", "bad input", TRAIN + MICRO + ["--set", "train.beta2=2"], r"train\.beta2 must be"),
    P("train-stage2-no-init", "bad input", TRAIN + MICRO + ["--stage", "2"], r"--stage 2 needs --init", 2),
    P("train-init-missing", "bad input", TRAIN + MICRO + ["--stage", "2", "--init", f"{W}/nope"],
      r"nope: checkpoint directory does not exist"),
    P("render-pair-empty-config-name", "bad input", ["render", "hi", "-o", f"{W}/a.png", "--config", f"{W}/data"],
      r"data: config file is a folder"),
    P("generate-checkpoint-missing", "bad input", ["generate", "--checkpoint", f"{W}/nope", "hi", "-o", f"{W}/g.png"],
      r"nope: checkpoint directory does not exist"),
    P("generate-checkpoint-is-file", "bad input", ["generate", "--checkpoint", f"{W}/corpus.txt", "hi", "-o", f"{W}/g.png"],
      r"corpus\.txt: a checkpoint is a directory"),
    P("verify-not-a-dataset", "bad input", ["data", "verify", f"{W}/ckpt"], r"ckpt/manifest\.json: no manifest"),
    P("bench-babi-tasks-bad", "bad input", BENCH_B + ["--tasks", "x"], r"'x' is not a number"),
    P("bench-lambada-empty", "bad input", BENCH_L, r"lambada_test\.jsonl: no passages",
      setup=write("data/lambada/lambada_test.jsonl", "")),
    P("bench-babi-finetune-steps-0", "bad input", BENCH_B + ["--finetune", "--finetune-steps", "0"],
      r"--finetune-steps.*range", 2),
    P("attack-finetune-steps-0", "bad input",
      ["attack", "--checkpoint", CKPT, "--task", "babi", "--finetune", "--finetune-steps", "0", "--out", f"{W}/att"],
      r"--finetune-steps.*range", 2),
    P("glue-limit-train-neg", "bad input", ["bench", "glue", "--checkpoint", CKPT, "--task", "sst2", "--limit-train", "-5"],
      r"--limit-train.*range", 2),
    P("convert-empty-src", "bad input", ["convert", f"{W}/empty-src", "-o", f"{W}/conv"], r"empty-src: missing config\.json",
      setup=lambda w: (w / "empty-src").mkdir()),

    # ---- corruption: damaged files name the file ----------------------------------------------------------
    P("train-config-binary", "corruption", TRAIN + ["--config", f"{W}/binary.bin"], r"binary\.bin: config file is not UTF-8"),
    P("render-config-binary", "corruption", ["render", "hi", "-o", f"{W}/a.png", "--config", f"{W}/binary.bin"],
      r"binary\.bin: config file is not UTF-8"),
    P("generate-config-nested", "corruption", GEN, r"config\.json: corrupt JSON", setup=_nested_config),
    P("generate-config-binary", "corruption", GEN, r"config\.json: corrupt JSON", setup=write("ckpt/config.json", b"\xff\xfe\x00")),
    P("generate-weights-truncated", "corruption", GEN, r"model\.safetensors: corrupt safetensors",
      setup=truncate("ckpt/model.safetensors", 100)),
    P("generate-last-garbage", "corruption", ["generate", "--checkpoint", RUN, "hi", "-o", f"{W}/g.png"],
      r"last: corrupt checkpoint pointer", setup=write("run/last", b"\x89PNG\x00\xff")),
    P("train-resume-last-garbage", "corruption",
      ["train", "--out", RUN, "--device", "cpu", "--resume", "auto", "--config", f"{W}/run/config.yaml"],
      r"last: corrupt checkpoint pointer", setup=write("run/last", "{not json")),
    P("bench-gpt2-truncated", "corruption", ["bench", "lambada", "--baseline", f"{W}/gpt2", "--data-dir", DATA,
                                             "--protocol", "lm-eval", "--limit", "1", "--out", f"{W}/b"],
      r"gpt2.*(cannot load|corrupt)", setup=truncate("gpt2/model.safetensors", 64)),
    P("bench-gpt2-tokenizer-garbage", "corruption", ["bench", "lambada", "--baseline", f"{W}/gpt2", "--data-dir", DATA,
                                                     "--protocol", "lm-eval", "--limit", "1", "--out", f"{W}/b"],
      r"gpt2.*(cannot load|tokenizer)", setup=write("gpt2/tokenizer.json", "{garbage")),
    P("bench-lambada-binary", "corruption", BENCH_L, r"lambada_test\.jsonl.*(not UTF-8|binary)",
      setup=write("data/lambada/lambada_test.jsonl", b"\xff\xfe\x00\x01" * 64)),
    P("bench-babi-binary", "corruption", BENCH_B, r"qa1_single-supporting-fact_test\.txt.*(not UTF-8|binary)",
      setup=write("data/babi/tasks_1-20_v1-2/en/qa1_single-supporting-fact_test.txt", b"\xff\xfe\x00\x01" * 64)),
    P("reproduce-summary-binary", "corruption", ["reproduce", "--report-only", "--runs", f"{W}/rr", "--results", f"{W}/res"],
      r"summary\.json.*(not UTF-8|corrupt|unreadable)", setup=write("res/lambada/x/summary.json", b"\xff\x00garbage")),
    P("convert-garbage-bin", "corruption", ["convert", f"{W}/official", "-o", f"{W}/conv"], r"pytorch_model\.bin: (corrupt|cannot)",
      setup=chain(_bin_only, write("official/pytorch_model.bin", b"garbage" * 10))),
    P("convert-empty-bin", "corruption", ["convert", f"{W}/official", "-o", f"{W}/conv"], r"pytorch_model\.bin: (corrupt|cannot|empty)",
      setup=chain(_bin_only, write("official/pytorch_model.bin", b""))),
    P("prepare-binary-source", "corruption", ["data", "prepare", f"{W}/binary.bin", "--out", f"{W}/new-data"],
      r"binary\.bin: binary file"),
    P("prepare-empty-source", "corruption", ["data", "prepare", f"{W}/empty.txt", "--out", f"{W}/new-data"],
      r"empty\.txt: empty source file"),
    P("train-shard-same-size-edit", "corruption", TRAIN + ON_PREP, r"data-00000-of-00001\.arrow: corrupt shard \(sha256",
      setup=_flip_shard_bytes),
    P("train-shard-ff", "corruption", TRAIN + ON_PREP,
      r"data-00000-of-00001\.arrow: corrupt shard", setup=_ff_shard),
    P("data-verify-edit", "corruption", ["data", "verify", PREP], r"data-00000-of-00001\.arrow: corrupt shard \(sha256",
      setup=_flip_shard_bytes),
    P("train-manifest-garbage", "corruption", TRAIN + ON_PREP,
      r"manifest\.json: unreadable manifest", setup=write("prepared/manifest.json", b"\x00\xff")),

    # ---- faults: nothing lost -------------------------------------------------------------------------------
    P("convert-over-run", "faults", ["convert", f"{W}/official", "-o", RUN], r"run: (is not empty|exists)"),
    P("convert-over-run-force", "faults", ["convert", f"{W}/official", "-o", RUN, "--force"],
      r"run: exists and is a folder that is not a checkpoint"),
    P("convert-over-data-force", "faults", ["convert", f"{W}/official", "-o", PREP, "--force"],
      r"prepared: exists and is a folder that is not a checkpoint"),
    P("convert-over-file-dir", "faults", ["convert", f"{W}/official", "-o", f"{W}/data"], r"data: (is not empty|exists)"),
    P("convert-disk-full", "faults", ["convert", f"{W}/official", "-o", f"{W}/conv"],
      r"no space left on device while writing .*conv; nothing was written", patch=_enospc_save),
    P("train-disk-full", "faults", TRAIN + MICRO + ["--set", "train.save_every=1"],
      r"no space left on device while writing .*step-0000001", patch=_enospc_save),
    P("render-readonly", "faults", ["render", "hi", "-o", f"{W}/ro/a.png"], r"a\.png: cannot write the image \(Read-only",
      patch=_erofs_png),
    P("render-out-under-file", "faults", ["render", "hi", "-o", f"{W}/corpus.txt/a.png"], r"a\.png: cannot write the image"),
    P("generate-out-under-file", "faults", GEN[:-2] + ["-o", f"{W}/corpus.txt/g.png"], r"g\.png: cannot write the image"),
    P("train-out-under-file", "faults", ["train", "--out", f"{W}/corpus.txt/run", "--device", "cpu"] + MICRO,
      r"corpus\.txt/run: cannot (create|write)"),
    P("bench-out-under-file", "faults", BENCH_L[:-1] + [f"{W}/corpus.txt/b"], r"corpus\.txt/b: cannot (create|write)"),
    P("demo-out-under-file", "faults", ["demo", "--out", f"{W}/corpus.txt/demo"], r"corpus\.txt/demo: cannot (create|write)"),
    P("train-fresh-over-run", "faults", ["train", "--out", RUN, "--device", "cpu", "--config", f"{W}/run/config.yaml"],
      r"already holds checkpoints"),
    P("train-data-cache-proc", "faults", TRAIN + MICRO + ["--set", "train.data_cache=/proc/pixar"],
      r"/proc/pixar.*cannot (create|write)"),
    P("prepare-concurrent", "faults", ["data", "prepare", f"{W}/corpus.txt", "--out", PREP, "--force"],
      r"prepared: another `pixar data prepare` .*is writing it", setup=_lock_prepare),
    P("prepare-over-run", "faults", ["data", "prepare", f"{W}/corpus.txt", "--out", RUN, "--force"],
      r"run: exists and is not a prepared dataset"),
    P("resume-no-last-bad-steps", "faults",
      ["train", "--out", RUN, "--device", "cpu", "--resume", "auto", "--config", f"{W}/run/config.yaml"],
      r"no 'last' pointer and no complete step checkpoint",
      setup=chain(_no_last, lambda w: [(p / "model.safetensors").unlink() for p in (w / "run").glob("step-*")])),

    # ---- security: nothing executed, nothing read from outside its folder ----------------------------------
    P("render-config-evil-yaml", "security", ["render", "hi", "-o", f"{W}/a.png", "--config", f"{W}/evil.yaml"],
      r"evil\.yaml: invalid YAML", setup=lambda w: write("evil.yaml", EVIL_YAML.format(w=w))(w)),
    P("train-config-evil-yaml", "security", TRAIN + ["--config", f"{W}/evil.yaml"], r"evil\.yaml: invalid YAML",
      setup=lambda w: write("evil.yaml", EVIL_YAML.format(w=w))(w)),
    P("resume-last-escapes", "security",
      ["train", "--out", RUN, "--device", "cpu", "--resume", "auto", "--config", f"{W}/run/config.yaml"],
      r"last: points to '\.\./base/step-0000010', outside its run folder", setup=_stale_last_pointer),
    P("generate-last-escapes", "security", ["generate", "--checkpoint", RUN, "hi", "-o", f"{W}/g.png"],
      r"outside its run folder", setup=_stale_last_pointer),
    P("manifest-shard-escapes", "security", TRAIN + ON_PREP,
      r"manifest\.json: shard '\.\./other/.*' is outside the dataset folder", setup=_escape_shard),
    P("verify-shard-escapes", "security", ["data", "verify", PREP], r"outside the dataset folder", setup=_escape_shard),
    P("config-json-absolute-font", "security", GEN, r"/etc/passwd: not a usable font file",
      setup=edit_json("ckpt/config.json", _set(["render", "font"], "/etc/passwd"))),

    # ---- load/memory: huge sizes fail fast, before allocating ----------------------------------------------
    P("render-scale-huge", "load/memory", ["render", "hello", "-o", f"{W}/a.png", "--scale", "100000"],
      r"--scale 100000 would make a .* image .*the limit is"),
    P("generate-scale-huge", "load/memory", GEN + ["--scale", "100000"], r"--scale 100000 would make"),
    P("prepare-max-chars-0", "load/memory", PREPARE + ["--max-chars", "0"], r"train\.max_chars must be"),
    P("generate-n-huge", "load/memory", GEN + ["-n", "100000"], r"-n 100000: the model has 48 positions"),
    P("generate-layers-huge", "load/memory", GEN, r"config\.json:model: model\.layers must be a finite number in \[1, 1024\]",
      setup=edit_json("ckpt/config.json", _set(["model", "layers"], 10_000_000))),
    P("generate-layers-mismatch", "load/memory", GEN, r"the weights have 2 layers, the config says model\.layers=1000",
      setup=edit_json("ckpt/config.json", _set(["model", "layers"], 1000))),
    P("generate-hidden-huge", "load/memory", GEN, r"config\.json:model: model\.hidden must be",
      setup=edit_json("ckpt/config.json", _set(["model", "hidden"], 1_000_000_000))),
    P("generate-hidden-mismatch", "load/memory", GEN, r"embed\.weight is \[64, 128\], the config says \[65536, 128\]",
      setup=edit_json("ckpt/config.json", _set(["model", "hidden"], 65536))),
    P("generate-ffn-mismatch", "load/memory", GEN, r"weights do not match the config \(.*mlp",
      setup=edit_json("ckpt/config.json", _set(["model", "ffn"], 100000))),
    P("train-hidden-huge", "load/memory", TRAIN + MICRO + ["--set", "model.hidden=1000000000"],
      r"model\.hidden must be a finite number in \[1, 65536\]"),
    P("train-layers-huge", "load/memory", TRAIN + MICRO + ["--set", "model.layers=10000000"], r"model\.layers must be"),
    P("train-positions-huge", "load/memory", TRAIN + MICRO + ["--set", "render.max_positions=1000000000",
                                                               "--set", "model.max_positions=1000000000"],
      r"max_positions must be"),
    P("render-config-positions-huge", "load/memory", ["render", "hi", "-o", f"{W}/a.png", "--config", f"{W}/p.yaml"],
      r"render\.max_positions must be", setup=write("p.yaml", "render: {max_positions: 1000000000}\n"
                                                             "model: {max_positions: 1000000000}\n")),
    P("generate-config-positions-huge", "load/memory", GEN, r"max_positions must be",
      setup=edit_json("ckpt/config.json", lambda d: (d["model"].update(max_positions=10**9),
                                                     d["render"].update(max_positions=10**9)))),
    P("generate-hidden-float", "load/memory", GEN, r"model:hidden: expected int",
      setup=edit_json("ckpt/config.json", _set(["model", "hidden"], 1e9))),
    P("convert-layers-huge", "load/memory", ["convert", f"{W}/official", "-o", f"{W}/conv"],
      r"config\.json: model\.layers must be", setup=edit_json("official/config.json", _set(["num_hidden_layers"], 10_000_000))),
    P("convert-layers-mismatch", "load/memory", ["convert", f"{W}/official", "-o", f"{W}/conv"],
      r"official: weight 'layers\.2\.self_attn\.q_proj\.weight' missing",
      setup=edit_json("official/config.json", _set(["num_hidden_layers"], 1000))),
    P("convert-hidden-mismatch", "load/memory", ["convert", f"{W}/official", "-o", f"{W}/conv"],
      r"official: weights do not match .*config\.json",
      setup=edit_json("official/config.json", _set(["hidden_size"], 65536))),
    P("convert-hidden-huge", "load/memory", ["convert", f"{W}/official", "-o", f"{W}/conv"],
      r"config\.json: model\.hidden must be", setup=edit_json("official/config.json", _set(["hidden_size"], 10**9))),
    P("convert-truncated-safetensors", "corruption", ["convert", f"{W}/official", "-o", f"{W}/conv"],
      r"model\.safetensors: corrupt safetensors", setup=truncate("official/model.safetensors", 200)),
]


# ---- running and classifying ------------------------------------------------------------------------------
def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    kind: str  # clean | traceback | silent | loss | unclear
    exit_code: int
    output: str
    detail: str = ""
    lost: list[str] = field(default_factory=list)


class _Patcher:
    """The part of pytest's monkeypatch the probes use (setattr, undone afterwards)."""

    def __init__(self):
        self._undo = []

    def setattr(self, obj, name, value):
        self._undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def undo(self):
        for obj, name, value in reversed(self._undo):
            setattr(obj, name, value)
        self._undo.clear()


def run_probe(probe: Probe, world: Path, workdir: Path) -> Outcome:
    """Copy `world` to `workdir`, apply the probe's setup, run the command there, classify the result."""
    import traceback

    from click.testing import CliRunner

    from harness.app import main

    shutil.copytree(world, workdir, symlinks=True)
    if probe.setup is not None:
        probe.setup(workdir)
    before = tree_digest(workdir)
    args = [a.replace("{w}", str(workdir)) for a in probe.args]
    patcher = _Patcher()
    if probe.patch is not None:
        probe.patch(patcher)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        result = CliRunner().invoke(main, args, env={"PIXAR_DATA": str(workdir / "data"),
                                                     "PIXAR_CACHE": str(workdir / ".cache")})
    finally:
        os.chdir(cwd)
        patcher.undo()
    out = result.output
    after = tree_digest(workdir)
    lost = sorted(k for k, v in before.items() if after.get(k) != v)
    if (workdir / "pwned").exists():
        lost.append("pwned (code was executed)")
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return Outcome("traceback", result.exit_code, out, tb[-3000:], lost)
    if lost:
        return Outcome("loss", result.exit_code, out, "", lost)
    if result.exit_code != probe.code:
        return Outcome("silent", result.exit_code, out, f"exit {result.exit_code}, expected {probe.code}")
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    if len(errors) != 1 or not re.search(probe.message, out) or "Traceback" in out:
        return Outcome("unclear", result.exit_code, out, f"no single error line matching {probe.message!r}")
    return Outcome("clean", result.exit_code, out)


def count(world: Path, scratch: Path, probes: list[Probe] = PROBES) -> dict[str, dict[str, int]]:
    table = {c: {k: 0 for k in ("probes", "clean", "traceback", "silent", "loss", "unclear")} for c in CATEGORIES}
    for i, probe in enumerate(probes):
        o = run_probe(probe, world, scratch / f"{i:03d}-{probe.id}")
        table[probe.category]["probes"] += 1
        table[probe.category][o.kind] += 1
        if o.kind != "clean":
            print(f"  {probe.id}: {o.kind} ({o.detail.strip().splitlines()[-1] if o.detail.strip() else o.output.strip()[-200:]})",
                  file=sys.stderr)
    return table


def markdown(table: dict[str, dict[str, int]]) -> str:
    cols = ("probes", "clean", "traceback", "silent", "loss", "unclear")
    lines = ["| category | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    total = {c: 0 for c in cols}
    for cat, row in table.items():
        lines.append(f"| {cat} | " + " | ".join(str(row[c]) for c in cols) + " |")
        for c in cols:
            total[c] += row[c]
    lines.append("| **all** | " + " | ".join(str(total[c]) for c in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python tests/probes.py: run every probe, print the table
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory() as d:
        world = build_world(Path(d) / "world")
        print(markdown(count(world, Path(d))))
