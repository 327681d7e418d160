"""The docs run as written: every ```bash block of README.md and docs/*.md.

The rule (README, "Development"):
- A block runs, as a bash script (`set -eo pipefail`), in a fresh folder per Markdown file, with `pixar` being
  `python -m harness.app` of this checkout, `$PIXAR_DATA` a copy of the data folder whose `corpus/` is a small
  generated one, and `$PIXAR_CACHE` inside the folder. Blocks run in file order; a block under
  `<!-- docs-test: run-last (why) -->` runs after the file's other blocks (it reads what a later block makes).
- TINY: the one substitution, applied to run blocks: every `pixar train` line gets `--set train.steps=2`
  (and `--set adv.steps=2` with `--stage 2`) appended, so training commands take seconds.
- A block under `<!-- docs-test: skip-run (why) -->` (a GPU, a cluster, the network, minutes) is parsed
  instead: every `pixar SUBCOMMAND` in it (also `python -m harness.app`/`torchrun -m harness.app`) must resolve
  to a command whose `--help` succeeds and which takes every `--option` the line uses; every `-m MODULE` must
  be a module that runs; every `make TARGET` a Makefile target. Run blocks are parsed the same way.
- Every relative link and image in README.md and docs/*.md names a file that exists.

The run part needs real data (fonts come from the package; the GPT-2 tokenizer and bAbI from $PIXAR_DATA) and
skips without it. README's and docs/data.md's scripts run side by side: 13 `pixar` processes, ~55 s of CPU in
all (torch/transformers imports dominate); measured 2 min 41 s wall on the 2 shared cores at load average 6.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(skip-run|run-last)\s*(.*?)\s*-->")
TINY = {"pixar train": ["--set", "train.steps=2"], "pixar train --stage 2": ["--set", "adv.steps=2"]}


@dataclass
class Block:
    file: Path
    line: int
    text: str
    mode: str  # run | run-last | skip-run
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}"


def bash_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            m = DIRECTIVE.search(lines[i - 1]) if i > 0 else None
            out.append(Block(path, i + 1, "\n".join(lines[i + 1:end]) + "\n", m.group(1) if m else "run",
                             m.group(2) if m else ""))
            i = end
        i += 1
    return out


ALL = [b for p in DOCS for b in bash_blocks(p)]


def logical_lines(text: str) -> list[str]:
    return [ln for ln in re.sub(r"\\\n\s*", " ", text).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def tiny(text: str) -> str:
    """The TINY substitution over a run block."""
    out = []
    for ln in logical_lines(text):
        code, sep, comment = ln.partition(" #")
        if re.match(r"\s*pixar train\b", code) and "--print-config" not in code:
            extra = TINY["pixar train"] + (TINY["pixar train --stage 2"] if re.search(r"--stage\s+2\b", code) else [])
            code = code.rstrip() + " " + " ".join(extra)
        out.append(code + (sep + comment if sep else ""))
    return "\n".join(out) + "\n"


# ---- parsing: commands, options, modules, make targets ----------------------------------------------
def segments(line: str) -> list[list[str]]:
    """Simple commands of a logical line as token lists (leading VAR=value assignments dropped); a quoted
    token that is itself a command line (bash -c '...') is split again."""
    out = []
    for seg in re.split(r"&&|\|\||;|\||\$\(", line):
        try:
            tokens = shlex.split(seg, comments=True)
        except ValueError:
            tokens = seg.split()
        while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
            tokens.pop(0)
        for t in tokens:
            if " -m " in t or t.startswith(("pixar ", "exec ")):
                out += segments(t)
        if tokens:
            out.append(tokens)
    return out


def pixar_calls(tokens: list[str]) -> tuple[list[str] | None, str | None]:
    """(arguments after `pixar` / `-m harness.app`, or None; the `-m` module, or None)."""
    if tokens[0] == "exec":
        tokens = tokens[1:]
    if tokens and tokens[0] == "pixar":
        return tokens[1:], None
    if "-m" in tokens[:-1]:
        i = tokens.index("-m")
        module = tokens[i + 1]
        return (tokens[i + 2:] if module == "harness.app" else None), module
    return None, None


def resolve(args: list[str]) -> tuple[click.Command, list[str], list[str]]:
    from harness.app import main

    cmd, path, rest = main, [], list(args)
    ctx = click.Context(main)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(ctx, rest[0])
        assert sub is not None, f"`pixar {' '.join(path + rest[:1])}`: no such command"
        path.append(rest.pop(0))
        cmd, ctx = sub, click.Context(sub, parent=ctx)
    return cmd, path, rest


def known_options(cmd: click.Command, path: list[str]) -> set[str]:
    if path == ["lm-eval"]:
        from harness.cli.lm_eval import OUR_OPTIONS, lm_eval_run_options

        return set(lm_eval_run_options()) | set(OUR_OPTIONS) | {"--help", "-h"}
    opts = {"--help", "-h"}
    for p in cmd.params:
        opts |= set(p.opts) | set(p.secondary_opts)
    return opts


def module_runs(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    text = Path(spec.origin).read_text()
    return module == "harness.app" or ("__main__" in text and "refuse_module_run(" not in text)


def check_block_parses(block: Block) -> None:
    makefile = (REPO / "Makefile").read_text()
    for line in logical_lines(block.text):
        for tokens in segments(line):
            args, module = pixar_calls(tokens)
            if module is not None:
                assert module_runs(module), f"{block}: `-m {module}` is not a module that runs (use -m harness.app)"
            if tokens[0] == "make":
                for target in [t for t in tokens[1:] if not t.startswith("-") and "=" not in t]:
                    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{block}: no make target {target}"
            if args is None:
                continue
            cmd, path, rest = resolve(args)
            r = CliRunner().invoke(cmd, ["--help"], prog_name=f"pixar {' '.join(path)}")
            assert r.exit_code == 0, f"{block}: `pixar {' '.join(path)} --help` failed: {r.output[-500:]}"
            known = known_options(cmd, path)
            for t in rest:
                name = t.split("=", 1)[0]
                if re.fullmatch(r"--?[A-Za-z][\w-]*", name):
                    assert name in known, f"{block}: `pixar {' '.join(path)}` has no option {name}"


@pytest.mark.parametrize("block", ALL, ids=str)
def test_every_bash_block_parses(block):
    check_block_parses(block)


def test_the_docs_have_blocks_of_each_kind():
    modes = {b.mode for b in ALL}
    assert modes == {"run", "run-last", "skip-run"}
    assert all(b.reason.startswith("(") for b in ALL if b.mode != "run"), "say why a block is not run"
    assert [b for b in ALL if b.file.name == "scaling.md"], "docs/scaling.md launch lines are fenced bash blocks"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|(?:src|href)=\"([^\"]+)\"")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve(doc):
    missing = []
    for m in LINK.finditer(doc.read_text()):
        target = (m.group(1) or m.group(2)).split("#", 1)[0]
        if not target or re.match(r"[a-z]+:", target):
            continue
        if not (doc.parent / target).exists():
            missing.append(target)
    assert not missing, f"{doc.name}: links to missing files {missing}"


# ---- running ---------------------------------------------------------------------------------------------
def fixture_data(root: Path, real: Path) -> Path:
    """$PIXAR_DATA for the run: the real folder's entries linked, corpus/ replaced by a small generated one."""
    data = root / "data"
    data.mkdir()
    for entry in real.iterdir():
        if entry.name != "corpus":
            (data / entry.name).symlink_to(entry.resolve())
    corpus = data / "corpus"
    corpus.mkdir()
    for d in range(3):
        corpus.joinpath(f"doc{d}.txt").write_text(" ".join(
            f"Sentence {i} of document {d} tells how the cat sat on the mat by the door." for i in range(120)))
    return data


def script(blocks: list[Block]) -> str:
    ordered = [b for b in blocks if b.mode == "run"] + [b for b in blocks if b.mode == "run-last"]
    body = "".join(f"echo '>>> {b}'\n{tiny(b.text)}" for b in ordered)
    return f'set -eo pipefail\npixar() {{ "{sys.executable}" -m harness.app "$@"; }}\n{body}'


@pytest.mark.slow  # 13 processes (each imports torch); the tiny substitution keeps every one to seconds
def test_run_blocks_run_as_written(tmp_path):
    real = os.environ.get("PIXAR_DATA")
    if not real or not Path(real).is_dir():
        pytest.skip("PIXAR_DATA is not set (the GPT-2 tokenizer and task data are real data)")
    data = fixture_data(tmp_path, Path(real))
    procs = {}
    for doc in DOCS:
        blocks = [b for b in ALL if b.file == doc and b.mode != "skip-run"]
        if not blocks:
            continue
        work = tmp_path / "work" / doc.stem
        work.mkdir(parents=True)
        env = {**os.environ, "PIXAR_DATA": str(data), "PIXAR_CACHE": str(work / ".cache"),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        procs[doc] = subprocess.Popen(["bash", "-c", script(blocks)], cwd=work, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
    outputs = {doc: p.communicate(timeout=600)[0] for doc, p in procs.items()}
    for doc, p in procs.items():
        assert p.returncode == 0, f"{doc.name}: a block failed:\n{outputs[doc][-3000:]}"
    readme = tmp_path / "work" / "README"
    assert (readme / "hello.png").is_file() and (readme / "gen.png").is_file()
    assert (readme / "runs" / "pixar-tiny-corpus" / "last").is_file()
    assert "stage 2 finished" in outputs[REPO / "README.md"] and "gpt2 baseline" in outputs[REPO / "README.md"]
    import datasets

    prepared = datasets.load_from_disk(str(readme / "data" / "corpus-prepared"))  # the folder opens at its top
    assert set(prepared) == {"train", "val"} and prepared["train"].num_rows > 0


@pytest.mark.parametrize("text,message", [
    ("pixar train --stage 1 --stepz 3\n", "has no option --stepz"),
    ("torchrun --nproc-per-node 4 -m harness.cli.render train --stage 1\n", "is not a module that runs"),
    ("pixar trian --config pixar-tiny\n", "no such command"),
    ("srun bash -c 'exec python -m harness.app data prepare x --out y --max-char 3'\n", "has no option --max-char"),
    ("make nothing-here\n", "no make target nothing-here"),
    ("pixar lm-eval --model pixar --model-args x\n", "has no option --model-args"),
])
def test_the_parse_check_catches_what_users_would_hit(text, message):
    with pytest.raises(AssertionError, match=message):
        check_block_parses(Block(REPO / "README.md", 1, text, "skip-run", "(test)"))


def test_tiny_substitution():
    text = ("pixar train --stage 2 --init runs/a --config pixar-tiny \\\n    --out runs/b   # stage 2\n"
            "pixar train --config pixar-tiny --print-config\npixar render x -o y.png\n")
    assert [" ".join(ln.split()) for ln in tiny(text).splitlines()] == [
        "pixar train --stage 2 --init runs/a --config pixar-tiny --out runs/b --set train.steps=2 --set adv.steps=2"
        " # stage 2", "pixar train --config pixar-tiny --print-config", "pixar render x -o y.png"]
