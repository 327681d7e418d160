"""A new user's paths: entry modules, --version, presets and --set keys, --print-config, data prepare for a
preset (and the folder opening in `datasets`), no empty run folder after a refusal, package metadata, the
optional extras, model cards that say what happened, generate's read-back text, the default thread count."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import pixar
from harness.app import main
from pixar.config import PixarConfig, preset_path

REPO = Path(__file__).resolve().parent.parent


def invoke(args, **kw):
    return CliRunner().invoke(main, args, **kw)


def one_error_line(result) -> str:
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


# ---- entry points -----------------------------------------------------------------------------------------
COMMAND_MODULES = sorted(p for p in [*(REPO / "harness" / "cli").glob("*.py"), *(REPO / "harness" / "study").glob("*.py")]
                         if re.search(r"@click\.(command|group)", p.read_text()))


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: p.stem)
def test_python_m_on_a_command_module_works_or_fails_loudly(path):
    """No `python -m harness.cli.<x>` exits 0 having done nothing (the old torchrun/sbatch trap)."""
    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=120)
    if r.returncode == 0:
        assert "Usage" in r.stdout or "usage" in r.stdout.lower(), (module, r.stdout[-300:])
    else:
        assert r.returncode == 2 and "python -m harness.app" in r.stderr, (module, r.stderr[-300:])
        assert len(r.stderr.strip().splitlines()) == 1


def test_version():
    r = invoke(["--version"])
    assert r.exit_code == 0 and r.output.startswith(f"pixar-harness {pixar.__version__} (torch ")


# ---- presets, --set keys, --print-config ----------------------------------------------------------------------
def test_unknown_preset_lists_the_presets(tmp_path):
    line = one_error_line(invoke(["train", "--config", "pixar-tiyn", "--out", str(tmp_path / "r")]))
    assert "unknown preset 'pixar-tiyn'" in line and "pixar-tiny" in line and "pixar-113m" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("item,hint", [("train.stepz=3", "did you mean train.steps"),
                                       ("adv.lr=1e-4", "did you mean adv.lr_d or adv.optim.lr"),
                                       ("modle.hidden=8", "did you mean model.hidden"),
                                       ("train.completely_unrelated_key=1", "unknown key")])
def test_mistyped_set_key_is_named_with_the_closest_keys(item, hint, tmp_path):
    line = one_error_line(invoke(["train", "--config", "pixar-micro", "--set", item, "--print-config"]))
    assert line.startswith(f"Error: --set {item}: unknown key") and hint in line
    assert str(preset_path("pixar-micro")) not in line  # not blamed on the YAML file


def test_print_config_is_the_resolved_config_and_runs_nothing(tmp_path):
    r = invoke(["train", "--config", "pixar-micro", "--set", "train.steps=7", "--set", "model.layers=3",
                "--out", str(tmp_path / "r"), "--print-config"])
    assert r.exit_code == 0, r.output
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"), ["train.steps=7", "model.layers=3"])
    assert yaml.safe_load(r.output) == cfg.to_dict() and not (tmp_path / "r").exists()
    g = invoke(["train", "--model", "gpt2", "--config", "gpt2-micro", "--set", "train.steps=5", "--print-config"])
    assert g.exit_code == 0 and yaml.safe_load(g.output)["train"]["steps"] == 5


# ---- data prepare for a preset; the folder opens in `datasets`; a refused run leaves nothing -------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "a.txt").write_text(" ".join(f"Sentence {i} says the cat sat on the mat by the door." for i in range(200)))
    return root / "a.txt"


def test_prepare_for_a_preset_opens_in_its_run_and_in_datasets(corpus, tmp_path, monkeypatch):
    import datasets

    monkeypatch.chdir(tmp_path)
    r = invoke(["data", "prepare", str(corpus), "--out", "prepared", "--config", "pixar-tiny"])
    assert r.exit_code == 0, r.output
    assert len([ln for ln in r.output.splitlines() if "documents ->" in ln]) == 1  # the summary, once
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    tiny = PixarConfig.from_yaml(preset_path("pixar-tiny")).train
    assert (manifest["packing"]["max_chars"], manifest["packing"]["min_chars"]) == (tiny.max_chars, tiny.min_chars)
    d = datasets.load_from_disk(str(tmp_path / "prepared"))
    assert set(d) == {"train", "val"}
    assert d["train"].num_rows == manifest["splits"]["train"]["chunks"] and d["val"].num_rows >= 1
    assert all(len(t) <= tiny.max_chars for t in d["train"]["text"])
    again = invoke(["data", "prepare", str(corpus), "--out", "prepared", "--config", "pixar-tiny",
                    "--max-chars", str(tiny.max_chars)])  # an explicit option equal to the preset's: still up to date
    assert again.exit_code == 0 and "up to date" in again.output


def test_a_refused_train_leaves_no_run_folder(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke(["data", "prepare", str(corpus), "--out", "prepared"]).exit_code == 0  # TrainConfig's 1180/101
    line = one_error_line(invoke(["train", "--config", "pixar-tiny", "--set", "train.data=[prepared]",
                                  "--out", "runs/x", "--device", "cpu"]))
    assert "prepared with max_chars=1180 (the run has 300)" in line and "--config" in line
    assert not (tmp_path / "runs").exists()


# ---- package ---------------------------------------------------------------------------------------------
def test_package_metadata_ranges_extras_license_and_exact_requirements():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = meta["dependencies"]
    assert not [d for d in deps if "==" in d], "the package declares ranges; requirements.txt pins"
    assert "torch>=2.4" in deps and not any(d.startswith(("textattack", "pytesseract")) for d in deps)
    extras = meta["optional-dependencies"]
    assert any(d.startswith("textattack") for d in extras["attacks"]) and any(d.startswith("pytesseract")
                                                                                for d in extras["ocr"])
    assert meta["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT License")
    pins = [ln for ln in (REPO / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][\w.+]*", p) for p in pins), pins


def test_missing_textattack_is_one_line(monkeypatch):
    import importlib.util

    from attacks import AttackUnavailableError
    from harness.robustness import textattack_bridge

    real = importlib.util.find_spec
    monkeypatch.delitem(sys.modules, "textattack", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "textattack" else real(name, *a))
    with pytest.raises(AttackUnavailableError, match=r"pip install 'pixar-harness\[attacks\]'"):
        textattack_bridge.import_textattack()


# ---- outputs people paste -------------------------------------------------------------------------------
def _run_folder(micro_checkpoint, tmp_path, meta):
    """A run folder (step checkpoint + `last`) around the micro checkpoint, with the given meta."""
    from pixar.checkpoint.store import save_step_checkpoint
    from pixar.model.transformer import load_model

    model, cfg = load_model(micro_checkpoint)
    save_step_checkpoint(tmp_path / "run", meta.pop("step"), model, cfg, None, meta=meta)
    return tmp_path / "run"


def test_stage1_card_states_what_ran_and_a_round_trip_keeps_the_step(micro_checkpoint, tmp_path, caplog):
    from pixar.model.transformer import Pixar

    run = _run_folder(micro_checkpoint, tmp_path, {"step": 120})
    with caplog.at_level("INFO"):
        model = Pixar.from_pretrained(run)  # a run folder: read at its newest checkpoint
    assert not [r for r in caplog.records if "not found" in r.getMessage()]
    model.save_pretrained(tmp_path / "shared")
    meta = json.loads((tmp_path / "shared" / "meta.json").read_text())
    assert meta["step"] == 120 and meta["stage"] == 1
    card = (tmp_path / "shared" / "README.md").read_text()
    assert "license: mit" in card and "- steps: 120" in card
    assert "stages run: stage 1 (maximum likelihood): 120 steps; stage 2 not run" in card
    assert "stage 2:" not in card and "april-tools/pixar\n" not in card.split("---")[1]
    assert "from pixar.read.text import generate_text" in card and "- data: " in card
    again = Pixar.from_pretrained(tmp_path / "shared")
    again.save_pretrained(tmp_path / "shared2")
    assert json.loads((tmp_path / "shared2" / "meta.json").read_text())["step"] == 120


def test_stage2_card_names_both_stages(micro_checkpoint, tmp_path):
    from pixar.model.transformer import Pixar

    run = _run_folder(micro_checkpoint, tmp_path, {"step": 30, "stage": 2})
    Pixar.from_pretrained(run).save_pretrained(tmp_path / "s2")
    card = (tmp_path / "s2" / "README.md").read_text()
    assert "stage 1 (maximum likelihood), then stage 2 (adversarial): 30 stage-2 steps" in card


def test_gpt2_card_and_match_after_a_model_change():
    from harness.models.gpt2_pretrain import gpt2_card

    card = gpt2_card({"name": "gpt2-micro", "matched_to": "pixar-micro", "match": "not matched: the model was "
                      "changed by --set model.n_layer=1", "params": 1234, "steps": 5,
                      "config": {"train": {"data": ["corpus"]}}})
    assert "| match | not matched: the model was changed by --set model.n_layer=1 |" in card
    assert "| parameters | 1,234 |" in card and "license: mit" in card and "AutoModelForCausalLM" in card


def test_generate_text_is_what_pixar_generate_prints(micro_checkpoint, tmp_path):
    from pixar.model.transformer import load_model
    from pixar.read.text import generate_text

    model, cfg = load_model(micro_checkpoint)
    model.pixar_config = cfg
    text = generate_text(model, "The cat sat on the", 6)
    assert text == generate_text(model, "The cat sat on the", 6)  # greedy: deterministic
    r = invoke(["generate", "--checkpoint", str(micro_checkpoint), "The cat sat on the", "-o", str(tmp_path / "g.png"),
                "-n", "6"])
    assert r.exit_code == 0 and (tmp_path / "g.png").is_file()
    assert r.output.splitlines()[-1] == f"read back (glyph decoder): The cat sat on the {text}"


# ---- defaults --------------------------------------------------------------------------------------------
def test_threads_auto_is_one_on_a_small_machine(monkeypatch):
    import torch

    from pixar.train import run_state

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(2)))
    assert run_state.cpu_threads(0) == 1 and run_state.cpu_threads(3) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(32)))
    assert run_state.cpu_threads(0) == torch.get_num_threads()


def test_only_rank_0_prints_the_summary(monkeypatch):
    from harness.cli.train import is_rank0

    monkeypatch.delenv("SLURM_PROCID", raising=False)
    monkeypatch.setenv("RANK", "0")
    assert is_rank0()
    monkeypatch.setenv("RANK", "3")
    assert not is_rank0()
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert not is_rank0()
