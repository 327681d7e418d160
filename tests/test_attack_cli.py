"""`pixar attack` end to end on fixtures: GLUE classifiers, bAbI paper protocol, TextAttack recipes, presets, errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

SST2_ROWS = [("a wonderful and moving picture", 1), ("the acting is dreadful and boring", 0),
             ("brilliant performances from everyone involved", 1), ("tedious, predictable and far too long", 0),
             ("charming little comedy with heart", 1), ("nothing works in this mess", 0),
             ("an absolute delight from start to finish", 1), ("painfully unfunny and lifeless", 0),
             ("smart writing and beautiful photography", 1), ("awkward dialogue ruins the story", 0)]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _byte_tokenizer(folder):
    """A byte-level GPT-2 tokenizer without merges (256 symbols + <|endoftext|>): no downloads."""
    from transformers import GPT2TokenizerFast
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    _write(folder / "vocab.json", json.dumps(vocab))
    _write(folder / "merges.txt", "#version: 0.2\n")
    return GPT2TokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))


@pytest.fixture(scope="module")
def glue_env(tmp_path_factory):
    """A PIXAR_DATA-like folder (SST-2 and RTE dev TSVs) and random sst2 classifiers (PIXAR micro, tiny GPT-2)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from harness.tasks.glue import get_task
    from harness.models.glue_classifiers import GPT2Classifier, PixarClassifier, classifier_info, save_classifier
    from pixar.config import PixarConfig, preset_path

    root = tmp_path_factory.mktemp("glue")
    _write(root / "data/glue/SST-2/dev.tsv", "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in SST2_ROWS))
    _write(root / "data/glue/RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n"
           "0\tThe black cat slept on the warm mat.\tA cat slept.\tentailment\n"
           "1\tParliament approved the budget yesterday.\tThe budget was rejected.\tnot_entailment\n"
           "2\tHeavy rain flooded several streets.\tStreets were flooded.\tentailment\n")
    spec = get_task("sst2")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        pixar = PixarClassifier(PixarConfig.from_yaml(preset_path("pixar-micro")), 2)
        pixar.reset_head(torch.Generator().manual_seed(0))
        tok = _byte_tokenizer(root / "tok")
        hf = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2,
                                                      n_positions=128, num_labels=2))
    clf = root / "clf"
    pixar_dir = save_classifier(pixar.eval(), clf / "pixar-micro" / "sst2", classifier_info(pixar, spec))
    gpt2 = GPT2Classifier(hf, tok)
    gpt2_dir = save_classifier(gpt2.eval(), clf / "gpt2-tiny" / "sst2", classifier_info(gpt2, spec))
    rte_dir = save_classifier(gpt2.eval(), clf / "gpt2-tiny" / "rte", classifier_info(gpt2, get_task("rte")))
    return {"data": root / "data", "pixar": pixar_dir, "gpt2": gpt2_dir, "gpt2_rte": rte_dir}


def _attack(args):
    from harness.cli.attack import attack

    return CliRunner().invoke(attack, [str(a) for a in args])


def test_glue_swap_confusable_table_clean_accuracy_and_determinism(glue_env, tmp_path):
    from harness.models.glue_classifiers import load_classifier

    base = ["--type", "swap,confusable", "--task", "sst2", "--rates", "0,0.5,1", "--checkpoint", glue_env["pixar"],
            "--baseline", glue_env["gpt2"], "--data-dir", glue_env["data"], "--limit", 8]
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        r = _attack(base + ["--seed", seed, "--out", tmp_path / name])
        assert r.exit_code == 0, r.output
        runs[name] = tmp_path / name
    out = runs["a"]
    for f in ("sst2.md", "sst2.csv", "sst2.png", "sst2_perturbed.csv", "sst2_predictions.jsonl", "summary.json"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    table = pd.read_csv(out / "sst2.csv")
    models = ["pixar:pixar-micro", "gpt2:gpt2-tiny"]
    assert len(table) == 2 * 3 * 2 and set(table["model"]) == set(models)
    assert not table.duplicated(["attack", "rate", "model"]).any() and (table["n"] == 8).all()
    assert set(table["metric"]) == {"GLUE dev accuracy (fine-tuned classifier)"}
    gold = np.array([y for _, y in SST2_ROWS[:8]])
    texts = [t for t, _ in SST2_ROWS[:8]]
    for model, path in zip(models, (glue_env["pixar"], glue_env["gpt2"])):
        clean = float((load_classifier(path)[1](texts).argmax(-1) == gold).mean())
        at0 = table[(table["model"] == model) & (table["rate"] == 0)]["accuracy"]
        assert len(at0) == 2 and np.allclose(at0, clean)  # rate 0 = the clean accuracy, for both attacks
    perturbed = pd.read_csv(out / "sst2_perturbed.csv")
    assert len(perturbed) == 2 * 3 * 8
    clean_rows = perturbed[perturbed["rate"] == 0]
    assert (clean_rows["original"] == clean_rows["perturbed"]).all()
    assert (perturbed[perturbed["rate"] == 1]["original"] != perturbed[perturbed["rate"] == 1]["perturbed"]).all()
    preds = [json.loads(x) for x in (out / "sst2_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == len(perturbed) * 2
    agg = pd.DataFrame(preds).groupby(["attack", "rate", "model"])["correct"].mean()
    for row in table.itertuples():
        assert agg[(row.attack, row.rate, row.model)] == pytest.approx(row.accuracy)
    # same seed -> identical outputs; another seed -> other perturbations
    assert (runs["b"] / "sst2.csv").read_text() == (out / "sst2.csv").read_text()
    assert (runs["b"] / "sst2_perturbed.csv").read_text() == (out / "sst2_perturbed.csv").read_text()
    assert (runs["c"] / "sst2_perturbed.csv").read_text() != (out / "sst2_perturbed.csv").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["rates"] == [0.0, 0.5, 1.0] and summary["versions"]["torch"]
    task = summary["tasks"]["sst2"]
    assert task["n_evaluated"] == 8 and task["n_total"] == 10 and [m["name"] for m in task["models"]] == models
    assert summary["attacks"]["confusable"]["family"] == "char"
    md = (out / "sst2.md").read_text()
    assert "## swap" in md and "## confusable" in md and "`gpt2:gpt2-tiny`: GLUE dev accuracy" in md


def test_pixel_attacks_hit_pixar_only_and_are_seeded(glue_env, tmp_path):
    """salt-pepper / shift perturb the rendered images of PIXAR models; GPT-2 has no pixels to attack."""
    from harness.models.glue_classifiers import load_classifier

    base = ["--type", "salt-pepper", "--task", "sst2", "--rates", "0,0.5", "--checkpoint", glue_env["pixar"],
            "--baseline", glue_env["gpt2"], "--data-dir", glue_env["data"], "--limit", 8, "--seed", 1]
    for name in ("a", "b"):
        r = _attack(base + ["--out", tmp_path / name])
        assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "a" / "sst2-pixel.csv")
    assert set(table["model"]) == {"pixar:pixar-micro"} and len(table) == 2
    assert table.equals(pd.read_csv(tmp_path / "b" / "sst2-pixel.csv"))
    gold = np.array([y for _, y in SST2_ROWS[:8]])
    model, proba = load_classifier(glue_env["pixar"])
    clean = float((proba([t for t, _ in SST2_ROWS[:8]]).argmax(-1) == gold).mean())
    assert np.allclose(table[table["rate"] == 0]["accuracy"], clean)
    shift = _attack(["--type", "shift", "--task", "sst2", "--rates", "0,1", "--checkpoint", glue_env["pixar"],
                     "--data-dir", glue_env["data"], "--limit", 8, "--out", tmp_path / "s"])
    assert shift.exit_code == 0, shift.output
    assert len(pd.read_csv(tmp_path / "s" / "sst2-pixel.csv")) == 2
    gpt_only = _attack(["--type", "salt-pepper", "--task", "sst2", "--checkpoint", glue_env["gpt2"],
                        "--data-dir", glue_env["data"], "--limit", 4, "--out", tmp_path / "c"])
    assert gpt_only.exit_code != 0 and "need a PIXAR model" in gpt_only.output


def test_pixel_attack_perturbs_the_rendered_input_and_leaves_the_renderer(tmp_path):
    from types import SimpleNamespace

    from harness.robustness.runs import run_pixel_attacks
    from pixar.config import RenderConfig
    from pixar.render.renderer import Renderer

    r = Renderer(RenderConfig(max_positions=16))
    clean_ink = int((r.render_batch(["ab", "cd"]).pixels == 0).sum())
    seen = []

    class InkModel:  # "prediction" = 0; records the ink pixel count of what the model was shown
        name, metric, supports_pixels, renderer = "pixar:x", "m", True, r

        def predict(self, texts, transform=None, ids=None):
            pixels = r.render_batch(texts).pixels
            shown = [transform(pixels[i], ids[i]) for i in range(len(texts))] if transform else list(pixels)
            seen.append(int(sum((p == 0).sum() for p in shown)))
            return [0] * len(texts)

    data = SimpleNamespace(examples=[{"text": "ab", "label": 0}, {"text": "cd", "label": 0}], name="toy")
    res = run_pixel_attacks(data, [InkModel()], ["salt-pepper"], [0.0, 0.5], 0, tmp_path)
    assert seen[0] == clean_ink and abs(seen[1] - (16 * 16 * 8 * 2) / 2) < 300  # p=0.5 flips half of all pixels
    assert "render_batch" not in vars(r) and int((r.render_batch(["ab", "cd"]).pixels == 0).sum()) == clean_ink
    assert [row["accuracy"] for row in res["rows"]] == [1.0, 1.0]
    assert [m.ci_low < 1.0 == m.ci_high for m in res["metrics"]] == [True, True]  # Wilson interval of 2/2


def test_pair_task_perturbs_both_texts(glue_env, tmp_path):
    from harness.models.glue_classifiers import load_classifier

    out = tmp_path / "rte"
    r = _attack(["--type", "disemvowel", "--task", "rte", "--rates", "0,1", "--baseline", glue_env["gpt2_rte"],
                 "--data-dir", glue_env["data"], "--out", out])
    assert r.exit_code == 0, r.output
    perturbed = pd.read_csv(out / "rte_perturbed.csv")
    attacked = perturbed[perturbed["rate"] == 1]["perturbed"].tolist()
    a, b = attacked[0].split(" ||| ")  # pairs are joined for the CSV; both texts are perturbed
    assert a.startswith("Th blck ct slpt") and b == "A ct slpt."
    table = pd.read_csv(out / "rte.csv")
    gold = np.array([0, 1, 0])
    pairs = [("The black cat slept on the warm mat.", "A cat slept."),
             ("Parliament approved the budget yesterday.", "The budget was rejected."),
             ("Heavy rain flooded several streets.", "Streets were flooded.")]
    clean = float((load_classifier(glue_env["gpt2_rte"])[1](pairs).argmax(-1) == gold).mean())
    assert table[table["rate"] == 0]["accuracy"].tolist() == [pytest.approx(clean)]
    preds = [json.loads(x) for x in (out / "rte_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and [p["gold"] for p in preds[:3]] == [0, 1, 0]


def test_babi_finetune_paper_protocol_with_pixar_and_gpt2(micro_checkpoint, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.tasks import babi_generator as babi_gen
    from harness.models.gpt2_baselines import load_gpt2
    from pixar.model.transformer import load_model

    babi_gen.write_task1(tmp_path / "babi", train=12, test=4, seed=0)
    tok = _byte_tokenizer(tmp_path / "gpt2")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2,
                                   n_positions=64)).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    out = tmp_path / "out"
    r = _attack(["--type", "confusable", "--task", "babi", "--rates", "0,0.6", "--checkpoint", micro_checkpoint,
                 "--baseline", tmp_path / "gpt2", "--babi-dir", tmp_path / "babi", "--limit", 4, "--finetune",
                 "--finetune-steps", 2, "--finetune-batch", 4, "--save-finetuned", tmp_path / "ft", "--out", out])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "babi-qa1.csv")
    assert len(table) == 2 * 2 and (table["n"] == 4).all() and table["accuracy"].between(0, 1).all()
    assert set(table["metric"]) == {"paper first-word acc (OCR glyph)", "paper first-word acc (case-insensitive)"}
    preds = pd.DataFrame([json.loads(x) for x in (out / "babi-qa1_predictions.jsonl").read_text().splitlines()])
    pixar_rows = preds[preds["model"].str.startswith("pixar:")]
    assert all(set(p["reads"]) == {"glyph"} and p["rule"] == "ocr" for p in pixar_rows["prediction"])
    assert set(preds["gold"]) <= set(babi_gen.LOCATIONS)
    for row in table.itertuples():  # the table is the mean of the per-example scores
        sub = preds[(preds["rate"] == row.rate) & (preds["model"] == row.model)]
        assert sub["correct"].mean() == pytest.approx(row.accuracy)
    perturbed = pd.read_csv(out / "babi-qa1_perturbed.csv")
    attacked = perturbed[perturbed["rate"] == 0.6]
    assert attacked["original"].str.endswith(" |").all()  # the whole paper prompt is the input
    assert all(any(ord(c) > 127 for c in p) for p in attacked["perturbed"])  # look-alikes were inserted
    summary = json.loads((out / "summary.json").read_text())
    models = summary["tasks"]["babi-qa1"]["models"]
    assert [m["kind"] for m in models] == ["pixar", "gpt2"] and all("+ft-babi-qa1" in m["name"] for m in models)
    # reference rows on the 4 clean questions; every metric row whose lower bound does not clear them says so
    refs = summary["tasks"]["babi-qa1"]["suite"]["references"]
    assert [r["name"] for r in refs] == ["majority class", "uniform chance", "last location"] and refs[0]["n"] == 4
    best = max(r["estimate"] for r in refs)
    assert all((m.get("note") == "at chance") == (m["ci_low"] <= best) for m in summary["metrics"])
    assert "| majority class | 4 |" in (out / "babi-qa1.md").read_text()
    # the micro PIXAR's positions cut clean prompts: its label says +fit<N>, with the count; GPT-2's room is in tokens
    fits = {f["model"]: f for f in summary["tasks"]["babi-qa1"]["suite"]["fits"]}
    px, gp = fits[models[0]["name"]], fits[models[1]["name"]]
    assert px["n"] == 4 and px["cut"] >= 1 and px["label"] == f"attack: paper first-word acc (OCR glyph)+fit{px['budget']}"
    assert px["unit"] == "positions" and gp["unit"] == "tokens"
    assert {m["protocol"] for m in summary["metrics"] if m["model"] == models[0]["name"]} == {px["label"]}
    assert f"{px['cut']} of 4 clean prompts ({100 * px['share']:.1f}%) cut to {px['budget']} positions" in (out / "babi-qa1.md").read_text()
    assert "5 greedy positions" in models[0]["protocol"] and "case-insensitive" in models[1]["protocol"]
    [(pixar_name, cov)] = summary["tasks"]["babi-qa1"]["suite"]["pixar_glyph_coverage"].items()
    assert pixar_name == models[0]["name"] and 0 <= cov["confusable"]["no_glyph"] <= cov["confusable"]["chars"]
    saved = [m["info"]["saved_to"] for m in models]
    assert not any(p.startswith("/") for p in saved)  # results hold paths relative to the run folder
    assert load_model(out / saved[0])[1].name == "pixar-micro"
    assert load_gpt2(str(out / saved[1]))[2]["name"].endswith("-ft-babi-qa1") and all(p.endswith("_ft-babi-qa1") for p in saved)


def test_deepwordbug_success_rate_table(glue_env, tmp_path):
    out = tmp_path / "dwb"
    r = _attack(["--type", "deepwordbug", "--task", "sst2", "--baseline", glue_env["gpt2"], "--data-dir",
                 glue_env["data"], "--limit", 4, "--query-budget", 40, "--out", out])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "sst2-deepwordbug.csv")
    assert table["model"].tolist() == ["gpt2:gpt2-tiny"] and table["n"].tolist() == [4]
    row = table.iloc[0]
    assert row["num_attacked"] + row["num_skipped"] == 4 and row["num_succeeded"] + row["num_failed"] == row["num_attacked"]
    assert row["clean_accuracy"] == pytest.approx(row["num_attacked"] / 4)
    _check_recipe_run(out, "deepwordbug", glue_env["gpt2"], row, 4, 40)
    assert json.loads((out / "summary.json").read_text())["versions"]["textattack"] == "0.3.11"


def _check_recipe_run(out, recipe, clf_dir, row, n, budget):
    """A recipe table row against the classifier itself: attacked = the examples it gets right."""
    from harness.models.glue_classifiers import load_classifier

    gold = np.array([y for _, y in SST2_ROWS[:n]])
    right = load_classifier(clf_dir)[1]([t for t, _ in SST2_ROWS[:n]]).argmax(-1) == gold
    assert row["num_attacked"] == int(right.sum()) >= 1  # the fixture classifier is right on some examples
    assert row["attack_success_rate"] == pytest.approx(row["num_succeeded"] / row["num_attacked"])
    assert row["accuracy_under_attack"] == pytest.approx(row["num_failed"] / n)
    assert 0 < row["avg_num_queries"] <= budget
    records = [json.loads(x) for x in (out / f"sst2-{recipe}_records.jsonl").read_text().splitlines()]
    assert len(records) == n and [x["status"] == "skipped" for x in records] == (~right).tolist()
    for x in records:
        if x["status"] == "succeeded":  # the perturbed text flips the classifier's argmax
            assert x["perturbed"] != x["original"]
            assert int(load_classifier(clf_dir)[1]([x["perturbed"]]).argmax(-1)[0]) != x["label"]
    assert "attack_success_rate" in (out / f"sst2-{recipe}.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    asr = [m for m in summary["metrics"] if m["metric"] == f"{recipe} attack success rate"]
    assert len(asr) == 1 and asr[0]["n"] == row["num_attacked"] and asr[0]["ci_low"] <= asr[0]["value"] <= asr[0]["ci_high"]


def test_pruthi_recipe_success_rate_table(glue_env, tmp_path):
    out = tmp_path / "pruthi"
    r = _attack(["--type", "pruthi", "--task", "sst2", "--baseline", glue_env["gpt2"], "--data-dir",
                 glue_env["data"], "--limit", 6, "--query-budget", 30, "--seed", 1, "--out", out])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "sst2-pruthi.csv")
    assert table["model"].tolist() == ["gpt2:gpt2-tiny"] and table["n"].tolist() == [6]
    row = table.iloc[0]
    assert row["num_attacked"] + row["num_skipped"] == 6 and row["num_succeeded"] + row["num_failed"] == row["num_attacked"]
    _check_recipe_run(out, "pruthi", glue_env["gpt2"], row, 6, 30)
    again = tmp_path / "pruthi2"
    assert _attack(["--type", "pruthi", "--task", "sst2", "--baseline", glue_env["gpt2"], "--data-dir", glue_env["data"],
                    "--limit", 6, "--query-budget", 30, "--seed", 1, "--out", again]).exit_code == 0
    assert (again / "sst2-pruthi_records.jsonl").read_text() == (out / "sst2-pruthi_records.jsonl").read_text()


def test_glyph_coverage_counts_characters_without_glyph():
    from harness.robustness.tasks import glyph_coverage
    from pixar.config import RenderConfig
    from pixar.render.renderer import Renderer

    cov = glyph_coverage(Renderer(RenderConfig()), ["ab c", ("\U0001d5a0b", "a")])  # MATHEMATICAL SANS-SERIF A
    assert cov["chars"] == 6 and cov["no_glyph"] == 1 and cov["no_glyph_chars"] == "\U0001d5a0"
    assert cov["no_glyph_fraction"] == pytest.approx(1 / 6)


def test_paper_preset_and_overrides(tmp_path):
    from harness.cli.attack import parse_rates, parse_types, resolve_settings

    s = resolve_settings({"ocr": "glyph", "limit": 5, "task": None}, "paper")
    assert s["type"] == "confusable" and s["task"] == "lambada,babi" and s["seed"] == 42 and s["limit"] == 5
    assert s["ocr"] == "glyph" and s["preset"].endswith("configs/attack/paper.yaml")
    assert parse_rates(s["rates"]) == [0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert resolve_settings({"seed": 7}, "paper")["seed"] == 7 and resolve_settings({})["seed"] == 0
    text, recipes = parse_types("all,deepwordbug")
    assert "swap" in text and "confusable" in text and "salt-pepper" not in text and "phonetic" not in text
    assert recipes == ["deepwordbug"]
    bad = _write(tmp_path / "bad.yaml", "type: swap\nrate: [0.1]\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key\(s\) \['rate'\] in AttackConfig"):
        resolve_settings({}, str(bad))
    # the preset is a dataclass (harness.robustness.preset.AttackConfig) with --set overrides, like every preset
    s = resolve_settings({"seed": 9}, "paper", ["seed=3", "rates=[0, 0.2]", "limit=7"])
    assert (s["seed"], s["rates"], s["limit"], s["type"], s["name"]) == (9, "0,0.2", 7, "confusable", "paper")
    assert resolve_settings({}, None, ["task=[babi, lambada]"])["task"] == "babi,lambada"
    with pytest.raises(ValueError, match="paper.yaml: ocr must be one of glyph, tesseract, union, got 'bogus'"):
        resolve_settings({}, "paper", ["ocr=bogus"])
    with pytest.raises(ValueError, match="limit must be a positive integer or null"):
        resolve_settings({}, None, ["limit=0"])


def test_paper_preset_on_lambada_matches_bench_at_rate_0(micro_checkpoint, data_dir, tmp_path):
    from harness.eval.bench import load_models, paper_eval
    from harness.tasks import lambada

    out = tmp_path / "lam"
    r = _attack(["--preset", "paper", "--task", "lambada", "--rates", "0,0.3", "--ocr", "glyph", "--limit", 3,
                 "--checkpoint", micro_checkpoint, "--out", out])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 42 and summary["tasks"]["lambada"]["positions"] == 4
    preds = [json.loads(x) for x in (out / "lambada_predictions.jsonl").read_text().splitlines()]
    [bm] = load_models(str(micro_checkpoint), [], "cpu", 16, "glyph", None, 0)
    examples = lambada.paper_examples(lambada.load_lambada(data_dir)[:3])
    _, rows = paper_eval(bm, examples, 4, None, 16)
    clean = [p for p in preds if p["rate"] == 0]
    assert [p["prediction"]["reads"]["glyph"] for p in clean] == [row["read"]["glyph"] for row in rows]
    assert [p["correct"] for p in clean] == [row["correct"]["glyph"] for row in rows]


@pytest.mark.parametrize("args,message", [
    (["--type", "swapp", "--task", "sst2", "--checkpoint", "CLF"], "unknown attack 'swapp'; valid: swap"),
    (["--type", "swap", "--task", "imdb", "--checkpoint", "CLF"], "unknown task 'imdb'; valid tasks: babi"),
    (["--task", "stsb", "--checkpoint", "CLF"], "stsb is a regression task"),
    (["--type", "phonetic", "--checkpoint", "CLF"], "attack 'phonetic' is unavailable"),
    (["--rates", "0,1.5", "--checkpoint", "CLF"], "--rates: 1.5 is outside [0, 1]"),
    (["--preset", "nope", "--checkpoint", "CLF"], "attack preset not found"),
    (["--task", "sst2", "--checkpoint", "/nonexistent/clf"], "/nonexistent/clf: classifier directory does not exist"),
    (["--task", "rte", "--checkpoint", "CLF"], "classifier was fine-tuned on 'sst2', not 'rte'"),
    (["--task", "sst2", "--checkpoint", "LM"], "not a fine-tuned GLUE classifier (meta kind 'pixar')"),
    (["--task", "babi", "--checkpoint", "CLF"], "a fine-tuned GLUE classifier; bAbI/LAMBADA need"),
    (["--type", "deepwordbug", "--task", "babi", "--checkpoint", "LM"], "TextAttack recipes attack GLUE classifiers"),
    (["--task", "sst2", "--finetune", "--checkpoint", "CLF"], "--finetune trains bAbI models"),
    (["--task", "babi", "--checkpoint", "/nonexistent/ckpt", "--babi-dir", "BABI"], "checkpoint directory does not exist"),
    (["--task", "sst2"], "pass --checkpoint DIR and/or --baseline"),
])
def test_errors_are_one_line(args, message, glue_env, micro_checkpoint, tmp_path):
    from harness.tasks import babi_generator as babi_gen
    babi_gen.write_task1(tmp_path / "babi", train=2, test=2, seed=0)
    subs = {"CLF": glue_env["pixar"], "LM": micro_checkpoint, "BABI": tmp_path / "babi"}
    r = _attack([subs.get(a, a) for a in args] + ["--data-dir", glue_env["data"], "--out", tmp_path / "o"])
    assert r.exit_code != 0 and message in r.output, r.output
    lines = r.output.strip().splitlines()
    assert "Traceback" not in r.output and lines[-1].startswith("Error: ") and message in lines[-1]
