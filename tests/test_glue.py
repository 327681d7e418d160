"""GLUE: metrics vs hand-computed values, TSV quirks and errors, the EOS-position head, fine-tuning, save/load, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from harness.tasks.glue import (GlueDataError, compute_metrics, f1_binary, get_task, load_local, matthews_corrcoef,
                          pearson, rankdata, read_tsv, spearman, accuracy)
from harness.models.glue_classifiers import (GlueFinetuneConfig as FinetuneConfig, GPT2Classifier, PixarClassifier, evaluate,
                                finetune, load_classifier, load_preset, predict_logits, save_classifier, classifier_info)
from pixar.train.loop import WARMUP_START_RATIO, Schedule
from pixar.config import OptimConfig, PixarConfig, preset_path
from pixar.config_io import ConfigError


# ---- metrics -----------------------------------------------------------------------------------
def test_binary_metrics_hand_computed():
    preds, labels = [1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]  # TP 2, FP 1, FN 1, TN 2
    assert accuracy(preds, labels) == pytest.approx(4 / 6)
    assert f1_binary(preds, labels) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert matthews_corrcoef(preds, labels) == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert matthews_corrcoef([1, 1, 1], [0, 1, 1]) == 0.0  # constant prediction: undefined -> 0
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert f1_binary([0, 0], [0, 0]) == 0.0


def test_multiclass_mcc_and_correlations_hand_computed():
    # 3 classes, confusion [[2,0,0],[0,1,1],[1,0,1]]: n=6, c=4, t=(2,2,2), p=(3,1,2)
    labels, preds = [0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 0, 2]
    expected = (4 * 6 - (2 * 3 + 2 * 1 + 2 * 2)) / math.sqrt((36 - (9 + 1 + 4)) * (36 - 12))
    assert matthews_corrcoef(preds, labels) == pytest.approx(expected)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84))
    # ties: ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4) -> 4.5 / sqrt(4.5 * 5)
    np.testing.assert_allclose(rankdata([1, 2, 2, 3]), [1, 2.5, 2.5, 4])
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman([1, 2, 3], [10, 20, 1000]) == pytest.approx(1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert set(compute_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])) == {"pearson", "spearman"}
    assert set(compute_metrics("mrpc", [1, 0], [1, 1])) == {"f1", "accuracy"}
    assert compute_metrics("cola", [1, 0], [1, 0]) == {"mcc": 1.0}


# ---- TSV loading -------------------------------------------------------------------------------
def _write(path, text: str, bom: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_tsv_quirks(tmp_path):
    glue = tmp_path / "glue"
    _write(glue / "CoLA/dev.tsv", "gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\tThem rode.\n")
    _write(glue / "MRPC/dev.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
           '1\t1\t2\tHe said "no.\t"The pie business.\n0\t3\t4\tA b\tC d\n', bom=True)
    # a stray quote that a csv reader with quoting on would carry across the line break
    _write(glue / "STS-B/dev.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
           '0\tg\tf\ty\t0\tn\tn\tA "u2 sign.\tA sign.\t4.2\n1\tg\tf\ty\t1\tn\tn\tDog".\tCat.\t3\n')
    _write(glue / "RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot_entailment\n1\tc\td\tentailment\n")
    cola = load_local("cola", "validation", tmp_path)
    assert cola.texts == ["The sailors rode the breeze.", "Them rode."] and cola.labels.tolist() == [1, 0]
    mrpc = load_local("mrpc", "validation", tmp_path)  # BOM stripped: "Quality" is found
    assert mrpc.texts[0] == ('He said "no.', '"The pie business.') and mrpc.labels.tolist() == [1, 0]
    stsb = load_local("stsb", "validation", tmp_path)
    assert len(stsb) == 2 and stsb.texts[1] == ('Dog".', "Cat.") and stsb.labels.dtype == np.float32
    np.testing.assert_allclose(stsb.labels, [4.2, 3.0])
    assert load_local("rte", "validation", tmp_path).labels.tolist() == [1, 0]  # HF ids: entailment = 0
    assert len(cola.subset(1, seed=0)) == 1 and cola.subset(0, seed=0) is cola


@pytest.mark.parametrize("task,text,line,what", [
    ("sst2", "sentence\tlabel\ngood\t1\nbad movie\n", 3, "expected 2 tab-separated fields, found 1"),
    ("sst2", "sentence\tlabel\ngood\tpositive\n", 2, "label 'positive' is not a class id"),
    ("sst2", "text\tlabel\ngood\t1\n", 1, "header lacks column(s) ['sentence']"),
    ("stsb", "sentence1\tsentence2\tscore\na\tb\tn/a\n", 2, "label 'n/a' is not a finite number"),
    ("rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tneutral\n", 2, "label 'neutral' is not one of"),
])
def test_malformed_rows_name_file_and_line(tmp_path, task, text, line, what):
    path = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(GlueDataError) as e:
        read_tsv(get_task(task), path)
    assert f"{path}:{line}: " in str(e.value) and what in str(e.value)


def test_missing_splits_and_unknown_task(tmp_path):
    (tmp_path / "glue").mkdir()
    with pytest.raises(GlueDataError, match="qqp validation split is missing locally.*--source hf"):
        load_local("qqp", "validation", tmp_path)
    with pytest.raises(GlueDataError, match="unknown GLUE task 'sst5'"):
        get_task("sst5")
    assert get_task("STS-B").name == "stsb"


def test_real_glue_files(data_dir):
    sizes = {("cola", "validation"): 1043, ("mrpc", "validation"): 408, ("stsb", "validation"): 1500,
             ("rte", "validation"): 277, ("sst2", "validation"): 872}
    for (task, split), n in sizes.items():
        assert len(load_local(task, split, data_dir)) == n
    mnli = load_local("mnli", "validation_matched", data_dir)
    assert np.bincount(mnli.labels).tolist() == [3479, 3123, 3213]  # README: entailment/neutral/contradiction
    assert load_local("mrpc", "train", data_dir).texts[0][0].startswith("Amrozi accused his brother")


# ---- schedules ---------------------------------------------------------------------------------
def test_lr_schedule_and_presets():
    # GLUE runs on the one schedule (pixar.train.loop): warm-up from WARMUP_START_RATIO * lr, cosine to min_lr_ratio * lr
    lr_at = Schedule.of(FinetuneConfig(steps=100, optim=OptimConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)))
    assert lr_at(0) == pytest.approx(WARMUP_START_RATIO) and lr_at(5) == pytest.approx(0.5, rel=1e-4)
    assert lr_at(10) == pytest.approx(1.0)
    assert lr_at(100) == pytest.approx(0.1) and lr_at(55) == pytest.approx(0.55)
    after = [lr_at(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    paper = {t: load_preset("paper", t) for t in ("mnli", "sst2", "stsb", "mrpc", "wnli")}
    assert (paper["mnli"].batch_size, paper["mnli"].steps, paper["mnli"].optim.warmup_steps, paper["mnli"].eval_every,
            paper["mnli"].optim.weight_decay) == (256, 8000, 1000, 500, 0.1)
    assert (paper["stsb"].batch_size, paper["mrpc"].steps, paper["wnli"].eval_every) == (32, 100, 1)
    assert all(c.optim.lr == 3e-5 and c.optim.beta2 == 0.95 and c.optim.min_lr_ratio == 0.1 and c.seed == 42 for c in paper.values())
    assert load_preset("tiny-cpu", "rte", ["steps=7"]).steps == 7
    with pytest.raises(ConfigError, match="unknown key"):
        load_preset("paper", "rte", ["stepz=7"])
    with pytest.raises(ConfigError, match="GLUE preset not found"):
        load_preset("nope", "rte")


# ---- PIXAR classifier --------------------------------------------------------------------------
def _micro_classifier(num_labels: int = 2, seed: int = 0) -> PixarClassifier:
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = PixarClassifier(cfg, num_labels)
    model.reset_head(torch.Generator().manual_seed(seed))
    return model.eval()


def test_pair_rendering_and_head_reads_last_eos():
    model = _micro_classifier()
    pixels, mask, _ = model.encode([("A cat sat.", "It sat."), "Short one"])
    pw = model.backbone.position_width
    positions = pixels.reshape(2, 8, -1, pw).permute(0, 2, 1, 3).reshape(2, -1, 8 * pw)
    full_ink = (positions == 0).all(-1)  # [B, T]: EOS blocks
    last = mask.sum(1) - 1
    assert full_ink[0].sum() == 2 and full_ink[1].sum() == 1  # a, EOS, b, EOS vs text, EOS
    assert full_ink[0, last[0]] and full_ink[1, last[1]]
    long_a = " ".join(["word"] * 200)  # far wider than the 48-position strip
    px2, mask2, truncated = model.encode([(long_a, "Tail text.")])
    pos2 = px2.reshape(1, 8, -1, pw).permute(0, 2, 1, 3).reshape(1, -1, 8 * pw)
    eos2 = torch.nonzero((pos2[0] == 0).all(-1)).flatten()
    assert truncated[0] and len(eos2) == 2 and eos2[1] == mask2.sum() - 1  # longest-first: text_b survives
    assert (pos2[0, eos2[0] + 1: eos2[1]] == 0).any()  # ink of text_b between the two EOS blocks
    with torch.no_grad():
        logits = model(pixels, mask)
        hidden = model.backbone.hidden_states(positions)
        manual = model.score(hidden[torch.arange(2), last])
        torch.testing.assert_close(logits, manual)
        noisy = pixels.clone()
        start = int(last[0] + 1) * pw
        noisy[0, :, start:] = torch.rand(noisy[0, :, start:].shape, generator=torch.Generator().manual_seed(1))
        noisy[1, :, int(last[1] + 1) * pw:] = 0.0  # ink everywhere after the EOS
        torch.testing.assert_close(model(noisy, mask), logits)  # nothing after the EOS position matters
        edited = pixels.clone()
        edited[0, :, 2 * pw: 3 * pw] = 1 - edited[0, :, 2 * pw: 3 * pw]  # inside text_a
        assert not torch.allclose(model(edited, mask)[0], logits[0])


def _synthetic(n: int, seed: int):
    """Separable by ink density: label 1 = runs of 'm'/'W', label 0 = runs of '.' and ','."""
    from harness.tasks.glue import GlueData

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    texts = ["".join(rng.choice(list("mW" if y else ".,"), size=rng.integers(3, 12))) for y in labels]
    return GlueData("sst2", "synthetic", texts, labels.astype(np.int64), "synthetic")


def test_tiny_finetune_raises_accuracy_and_round_trips(tmp_path):
    model, spec = _micro_classifier(), get_task("sst2")
    train, dev = _synthetic(96, 0), _synthetic(48, 1)
    before = evaluate(model, dev)["accuracy"]
    cfg = FinetuneConfig(batch_size=16, micro_batch_size=8, steps=30, eval_every=10,
                         optim=OptimConfig(lr=3e-3, warmup_steps=3))
    res = finetune(model, spec, train, {"validation": dev}, cfg)
    after = evaluate(model, dev)["accuracy"]  # best-dev weights are restored
    assert after >= 0.9 and after > before
    assert after == res.best["validation"]["accuracy"] == max(h["dev"]["validation"]["accuracy"] for h in res.history)
    assert [h["step"] for h in res.history] == [10, 20, 30]
    path = save_classifier(model, tmp_path / "clf", classifier_info(model, spec))
    meta = json.loads((path / "meta.json").read_text())
    assert meta["kind"] == "pixar-classifier" and meta["classifier"]["label_names"] == ["negative", "positive"]
    loaded, predict_proba = load_classifier(path)
    probs = predict_proba(dev.texts[:5], batch_size=2)
    assert probs.shape == (5, 2) and np.allclose(probs.sum(1), 1.0)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(predict_logits(model, dev.texts[:5])), -1).numpy(),
                               atol=1e-6)


def test_regression_head_trains_with_mse():
    model, spec = _micro_classifier(num_labels=1), get_task("stsb")
    from harness.tasks.glue import GlueData

    data = GlueData("stsb", "train", [("a b", "a b"), ("mmm", "...")] * 4, np.array([5.0, 0.0] * 4, np.float32), "x")
    res = finetune(model, spec, data, {"validation": data}, FinetuneConfig(batch_size=8, steps=15, eval_every=15,
                                                                            optim=OptimConfig(lr=3e-3, warmup_steps=1)))
    assert set(res.best["validation"]) == {"pearson", "spearman"} and res.best["validation"]["pearson"] > 0.9
    assert predict_logits(model, data.texts[:3]).shape == (3, 1)


# ---- GPT-2 classifier --------------------------------------------------------------------------
def _byte_tokenizer(tmp_path):
    """A byte-level GPT-2 tokenizer with no merges (256 byte symbols + <|endoftext|>): no downloads."""
    from transformers import GPT2TokenizerFast
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    return GPT2TokenizerFast(vocab_file=str(tmp_path / "vocab.json"), merges_file=str(tmp_path / "merges.txt"))


def test_gpt2_classifier_pairs_finetune_and_round_trip(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tok = _byte_tokenizer(tmp_path)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        hf = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2,
                                                      n_positions=64, num_labels=2))
    model = GPT2Classifier(hf, tok, max_tokens=1000)
    assert model.max_tokens == 64 and hf.config.pad_token_id == tok.eos_token_id
    ids, att = model.encode([("ab", "c"), "abcde"])
    eos = tok.eos_token_id
    assert ids[0].tolist() == tok.encode("ab") + [eos] + tok.encode("c") + [eos] and att[0].tolist() == [1, 1, 1, 1, 0]
    long_ids, cut = model.token_ids(("x" * 100, "y" * 10))
    assert cut and len(long_ids) == 64 and long_ids.count(tok.encode("y")[0]) == 10
    spec, train, dev = get_task("sst2"), _synthetic(64, 2), _synthetic(32, 3)
    model.reset_head(torch.Generator().manual_seed(0))
    res = finetune(model, spec, train, {"validation": dev}, FinetuneConfig(batch_size=16, steps=20, eval_every=10,
                                                                           optim=OptimConfig(lr=3e-3, warmup_steps=2)))
    assert res.best["validation"]["accuracy"] >= 0.8
    path = save_classifier(model, tmp_path / "gpt2-clf", classifier_info(model, spec))
    loaded, predict_proba = load_classifier(path)
    assert json.loads((path / "meta.json").read_text())["kind"] == "gpt2-classifier"
    probs = predict_proba([("ab", "c"), "mmm"])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0)
    np.testing.assert_allclose(probs, predict_proba_ref(model, [("ab", "c"), "mmm"]), atol=1e-5)


def predict_proba_ref(model, texts):
    return torch.softmax(torch.from_numpy(predict_logits(model, texts)), -1).numpy()


# ---- CLI ---------------------------------------------------------------------------------------
def test_cli_on_fixture(tmp_path, micro_checkpoint):
    from click.testing import CliRunner

    from harness.cli.glue import glue

    rows = "\n".join(f"{t}\t{y}" for t, y in [("mmm WWW", 1), ("..,,.", 0)] * 6)
    _write(tmp_path / "data/glue/SST-2/train.tsv", "sentence\tlabel\n" + rows + "\n")
    _write(tmp_path / "data/glue/SST-2/dev.tsv", "sentence\tlabel\n" + rows + "\n")
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = _byte_tokenizer(tmp_path)
    gpt2_dir = tmp_path / "gpt2-run" / "final"  # what harness.models.gpt2_baselines.train_gpt2 writes: model + tokenizer
    with torch.random.fork_rng():
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=32)).save_pretrained(gpt2_dir)
    tok.save_pretrained(gpt2_dir)
    out = tmp_path / "out"
    args = ["--task", "all", "--checkpoint", str(micro_checkpoint), "--baseline", str(gpt2_dir), "--data-dir",
            str(tmp_path / "data"), "--out", str(out), "--classifiers", str(tmp_path / "clf"), "--limit-dev", "8", "--set", "steps=3", "--set", "eval_every=2",
            "--set", "batch_size=4"]
    result = CliRunner().invoke(glue, args)
    assert result.exit_code == 0, result.output
    assert "skipped (no local train split): cola, mrpc, qqp, stsb, mnli, qnli, rte, wnli" in result.output
    md = (out / "glue_finetuned.md").read_text()
    assert "fine-tuned dev accuracy (x100)" in md and "| gpt2-gpt2-run_final | sst2 |" in md
    csv_lines = (out / "glue_finetuned.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 3 + 2 and csv_lines[0].startswith("model,task,preset,n_train,n_dev")  # + 2 reference rows
    gpt2_rec = json.loads((out / "gpt2-gpt2-run_final/sst2/results.json").read_text())
    gpt2_clf = out / "gpt2-gpt2-run_final/sst2" / gpt2_rec["classifier_dir"]  # relative to the record's folder
    assert gpt2_rec["kind"] == "gpt2" and load_classifier(gpt2_clf)[1](["ab"]).shape == (1, 2)
    [res_file] = out.glob("pixar-*/sst2/results.json")
    rec = json.loads(res_file.read_text())
    assert rec["data"]["dev"]["validation"]["n"] == 8 and rec["config"]["steps"] == 3 and rec["seed"] == 42
    assert [h["step"] for h in rec["history"]] == [2, 3] and rec["best_step"] in (2, 3)
    assert rec["versions"]["torch"] and rec["renderer"].startswith("pixar-render-")
    assert (res_file.parent / rec["classifier_dir"]).resolve() == (tmp_path / "clf" / rec["model"] / "sst2").resolve()
    _, predict_proba = load_classifier(res_file.parent / rec["classifier_dir"])
    assert predict_proba(["mmm"]).shape == (1, 2)
    summary = json.loads((out / "summary.json").read_text())  # harness.results.schema schema over both records
    assert summary["schema_version"] == 1 and summary["command"] == "bench glue"
    acc = {m["model"]: m for m in summary["metrics"] if m["metric"] == "accuracy" and not m["model"].startswith("reference")}
    assert set(acc) == {rec["model"], "gpt2-gpt2-run_final"}
    assert acc[rec["model"]]["value"] == rec["metrics"]["validation"]["accuracy"] and acc[rec["model"]]["n"] == 8
    assert acc[rec["model"]]["ci_low"] <= acc[rec["model"]]["value"] <= acc[rec["model"]]["ci_high"]
    # intervals from the per-example dev predictions of the best-dev weights; reference rows on the same examples
    preds = [json.loads(x) for x in (res_file.parent / rec["dev_predictions"]["validation"]).read_text().splitlines()]
    assert len(preds) == 8 and {p["label"] for p in preds} <= {0, 1}
    assert sum(p["label"] == p["prediction"] for p in preds) / 8 == rec["metrics"]["validation"]["accuracy"]
    refs = {m["model"]: m for m in summary["metrics"] if m["model"].startswith("reference: ")}
    assert set(refs) == {"reference: majority class", "reference: uniform chance"}
    maj = max(sum(p["label"] == c for p in preds) for c in (0, 1)) / 8
    assert refs["reference: majority class"]["value"] == maj
    assert (acc[rec["model"]].get("note") == "at chance") == (acc[rec["model"]]["ci_low"] <= maj)
    assert "fine-tuned dev accuracy (x100) 95% CI" in md and "| reference: majority class | sst2 |" in md
    import pandas as pd

    table = pd.read_csv(out / "glue_finetuned.csv")
    assert table["fine-tuned dev accuracy (x100) ci_low"].dtype.kind == "f"
    assert not any(str(v).startswith("/") for v in summary["files"])
    bad = CliRunner().invoke(glue, ["--task", "qqp", "--checkpoint", str(micro_checkpoint),
                                    "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    assert bad.exit_code == 1 and "qqp train split is missing locally" in bad.output
    assert CliRunner().invoke(glue, ["--task", "sst2"]).exit_code == 2  # neither --checkpoint nor --baseline


def test_hf_loader_field_mapping(monkeypatch):
    """nyu-mll/glue rows -> GlueData, through a stand-in `datasets` module (no network, no real import)."""
    import sys
    import types

    from harness.tasks.glue import load_hf, load_split

    rows = {("mnli", "validation_matched"): {"premise": ["P1", "P2"], "hypothesis": ["H1", "H2"], "label": [2, 0]},
            ("cola", "train"): {"sentence": ["s"], "label": [-1]}}
    calls = []

    def load_dataset(path, name, split):
        calls.append((path, name, split))
        return rows[(name, split)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    mnli = load_split("mnli", "validation_matched", source="hf")
    assert mnli.texts == [("P1", "H1"), ("P2", "H2")] and mnli.labels.tolist() == [2, 0]
    assert calls == [("nyu-mll/glue", "mnli", "validation_matched")] and mnli.source.startswith("hf:nyu-mll/glue/mnli")
    with pytest.raises(GlueDataError, match="has no labels"):
        load_hf("cola", "train")


def test_zero_shot_glue_through_lm_eval(micro_checkpoint, data_dir, tmp_path):
    """`pixar bench glue --zero-shot`: lm-eval multiple choice on the local dev TSVs, its own table."""
    from click.testing import CliRunner

    from harness.tasks.glue_zeroshot import PROMPTS, _custom_dataset, lm_eval_task
    from harness.app import main

    rows = _custom_dataset(task="rte", data_dir=str(data_dir))["validation"]
    assert len(rows) == 277 and set(rows[0]) == {"sentence1", "sentence2", "label"}
    assert lm_eval_task("cola", data_dir)["metric_list"] == [{"metric": "mcc"}] and PROMPTS["sst2"][1] == ["negative", "positive"]
    out = tmp_path / "zs"
    res = CliRunner().invoke(main, ["bench", "glue", "--zero-shot", "--task", "sst2,rte", "--checkpoint", str(micro_checkpoint),
                                    "--limit-dev", "4", "--out", str(out), "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    table = (out / "glue_zeroshot.md").read_text()
    assert "zero-shot (lm-eval) dev acc (x100)" in table and "fine-tuned" not in table
    import pandas as pd
    df = pd.read_csv(out / "glue_zeroshot.csv")
    assert sorted(df["task"]) == ["rte", "sst2"] and (df["n"] == 4).all()
    assert df["zero-shot (lm-eval) dev acc (x100)"].between(0, 100).all()
    [lm_json] = out.glob("zeroshot-lm-eval-*.json")
    res = json.loads(lm_json.read_text())
    assert str(data_dir) not in lm_json.read_text()  # data paths are written relative to $PIXAR_DATA
    summary = json.loads((out / "summary.json").read_text())
    for row in df.itertuples():
        acc = res["results"][f"pixar_glue_{row.task}_zeroshot"]["acc,none"]
        k = acc * 4
        assert abs(k - round(k)) < 1e-9  # 4 examples: an accuracy of k/4
        assert getattr(row, "_4") == pytest.approx(round(100 * acc, 2))
        [m] = [m for m in summary["metrics"] if m["task"] == row.task and m["metric"] == "acc"]
        assert m["value"] == pytest.approx(acc) and m["n"] == 4 and m["ci_low"] <= acc <= m["ci_high"]
        assert m["protocol"] == "glue zero-shot (lm-eval)"
    bad = CliRunner().invoke(main, ["bench", "glue", "--zero-shot", "--task", "stsb", "--checkpoint", str(micro_checkpoint),
                                    "--data-dir", str(data_dir), "--out", str(out)])
    assert bad.exit_code != 0 and "no zero-shot task" in bad.output
