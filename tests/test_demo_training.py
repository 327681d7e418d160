"""The demo's training side: fine-tuning seeds as separate runs with the same perturbations, the training record
(lr picked, budget used, accuracy over seeds) read back from the runs, progress lines, and a pretraining text
that leaves out the dev stories."""
import json

from harness.study.demo import (DEV_FRACTION, FT_LRS, chain_progress, demo_steps, training_lines, training_record,
                                write_generated_data)
from harness.models.plateau import story_split
from harness.tasks.babi import parse_babi_file

MATCHING = {"unit": "non_embedding_flops", "rule": "non-embedding FLOPs",
            "pretraining": {"pixar_steps": 400, "pixar_flops": 1.13e12, "gpt2_steps": 25, "gpt2_flops": 1.12e12},
            "finetuning": {"pixar_steps": 800, "pixar_batch": 8, "pixar_flops": 1.13e12, "gpt2_steps": 560,
                           "gpt2_batch": 8, "gpt2_flops": 1.13e12, "gpt2_mean_padded_tokens": 92.8}}


def _arg(args, name):
    return args[args.index(name) + 1]


def test_seeds_are_separate_fine_tuning_runs_on_the_same_perturbations(tmp_path):
    steps, _ = demo_steps(tmp_path, data_dir=None, seed=5, matching=MATCHING, seeds=3)
    tuned = {s.name: s.args for s in steps if "fine-tuned" in s.name}
    assert len(tuned) == 6 and sum(s.name.startswith("pixar stage 1") for s in steps) == 1  # pretrained once
    px = [a for n, a in tuned.items() if n.startswith("pixar")]
    assert [_arg(a, "--finetune-seed") for a in px] == ["5", "6", "7"] and {_arg(a, "--seed") for a in px} == {"5"}
    assert [_arg(a, "--out") for a in px] == [str(tmp_path / d) for d in
                                              ("attack-pixar", "attack-pixar-seed6", "attack-pixar-seed7")]
    for name, a in tuned.items():  # both models: the same lr grid, dev split and patience; each its own cap
        assert _arg(a, "--finetune-lrs") == ",".join(f"{x:g}" for x in FT_LRS) and len(FT_LRS) >= 3
        assert float(_arg(a, "--finetune-dev")) == DEV_FRACTION and int(_arg(a, "--finetune-patience")) >= 1
        assert _arg(a, "--finetune-steps") == ("800" if name.startswith("pixar") else "560")


def _run(folder, model, lr, correct, best=300):
    folder.mkdir(parents=True)
    fs = {"lr": lr, "cap_steps": 800, "chosen": {"best_step": best, "steps_run": best + 200, "stopped_early": True,
                                                 "best_dev": 0.6, "best_dev_accuracy": 0.4, "used_to_best": {"steps": best}},
          "used_sweep_total": {"steps": 1500}, "sweep": [{"lr": lr, "best_dev": 0.6, "best_dev_accuracy": 0.4}]}
    (folder / "summary.json").write_text(json.dumps({"models": [{"name": model, "info": {"finetune_summary": fs}}]}))
    rows = [{"attack": "swap", "rate": r, "example": i, "correct": c}
            for r, flags in correct.items() for i, c in enumerate(flags)]
    (folder / "babi-qa1_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_training_record_reads_lr_budget_and_accuracy_per_seed(tmp_path):
    _run(tmp_path / "attack-pixar", "pixar", 2e-3, {0.0: [1, 1, 0, 0], 0.3: [1, 0, 0, 0]})
    _run(tmp_path / "attack-pixar-seed1", "pixar", 1e-3, {0.0: [1, 1, 1, 0], 0.3: [0, 0, 0, 0]})
    _run(tmp_path / "attack-gpt2", "gpt2", 4e-3, {0.0: [0, 0, 0, 1], 0.3: [0, 0, 0, 1]})
    _run(tmp_path / "attack-gpt2-seed1", "gpt2", 4e-3, {0.0: [0, 0, 1, 1], 0.3: [0, 0, 0, 0]}, best=100)
    rec = training_record(tmp_path, seed=0, seeds=2)
    assert json.loads((tmp_path / "training.json").read_text()) == rec
    px, gp = rec["models"]["pixar"], rec["models"]["gpt2"]
    assert [r["lr"] for r in px["finetuning"]] == [2e-3, 1e-3] and [r["best_step"] for r in gp["finetuning"]] == [300, 100]
    clean = px["accuracy"]["swap 0"]
    assert clean["per_seed"] == [0.5, 0.75] and clean["mean"] == 0.625 and clean["seeds"] == 2 and clean["n"] == 4
    assert gp["accuracy"]["swap 0.3"]["per_seed"] == [0.25, 0.0]
    lines = training_lines(rec)
    assert lines[0].startswith("PIXAR seed 0: lr 0.002 picked from 0.002 (dev 40.0%); best dev at step 300, "
                               "stopped at 500 of a 800-step cap")
    clean = next(line for line in lines if line.startswith("PIXAR clean"))
    assert "mean 62.5%" in clean and "per seed 50.0, 75.0" in clean


def test_chain_progress_names_the_running_step_and_the_last_bar(tmp_path):
    (tmp_path / "steps-gpt2").mkdir()
    (tmp_path / "steps-gpt2" / "steps.json").write_text(json.dumps([{"name": "gpt2 pretrain"}]))
    (tmp_path / "gpt2.log").write_text("loading\nfinetune gpt2 lr 0.001:  10%|#  | 10/100\rfinetune gpt2 lr 0.001:  "
                                       "20%|## | 20/100\r")
    line = chain_progress(tmp_path, "gpt2", ["gpt2 pretrain", "gpt2 fine-tuned", "gpt2 extra"])
    assert line.startswith("gpt2 step 2/3 gpt2 fine-tuned: finetune gpt2 lr 0.001:  20%")
    assert chain_progress(tmp_path, "pixar", ["pixar stage 1"]) == "pixar step 1/1 pixar stage 1: "


def test_pretraining_text_leaves_out_the_dev_stories(tmp_path):
    corpus = write_generated_data(tmp_path, seed=0)
    qs = parse_babi_file(tmp_path / "babi" / "qa1_single-supporting-fact_train.txt", task=1)
    train, dev = story_split([(q.paper_prompt(), q.answer) for q in qs], DEV_FRACTION)
    lines = corpus.read_text().splitlines()
    assert lines == [f"{p} {a}" for p, a in train] and dev and not set(lines) & {f"{p} {a}" for p, a in dev}
