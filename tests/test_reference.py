"""Reference rows (harness.results.reference): trivial rules on the same examples, answer diversity, the at-chance
rule; and result files that hold data only (no object reprs, numeric interval columns)."""
import json

import pytest

from harness.results import reference as R
from harness.results.schema import Metric, write_summary
from harness.results.stats import wilson_interval

BABI = [  # paper-format prompts: the last location before the final question is the rule's answer
    {"prompt": "Mary went to the kitchen. John moved to the garden. Where is Mary? |", "target": "kitchen"},
    {"prompt": "Sandra went to the office. Where is Sandra? | office Daniel went to the hallway. Where is Sandra? |",
     "target": "office"},
    {"prompt": "John went to the garden. Mary went to the office. Where is John? |", "target": "garden"},
    {"prompt": "Daniel went to the garden. Where is Daniel? |", "target": "garden"},
]


def test_babi_rules_hand_computed():
    assert R.last_location(BABI) == ["garden", "hallway", "office", "garden"]  # 1 of 4 right
    assert R.majority_class(BABI) == ["garden"] * 4  # 2 of 4
    rows = {r.name: r for r in R.reference_rows("babi qa1 single-supporting-fact", BABI)}
    assert list(rows) == ["majority class", "uniform chance", "last location"]
    assert rows["last location"].interval == wilson_interval(1, 4)
    assert rows["majority class"].interval == wilson_interval(2, 4)
    # uniform among the 3 distinct answers: expected 1/3, with the Wilson interval of that rate over 4
    assert rows["uniform chance"].interval.estimate == pytest.approx(1 / 3)
    assert rows["uniform chance"].interval == wilson_interval(4 / 3, 4)
    assert R.best_reference(list(rows.values()))["name"] == "majority class"
    d = rows["majority class"].to_dict()
    assert (d["distinct"], d["top_answer"], d["top_share"], d["n"]) == (1, "garden", 1.0, 4)


def test_lambada_context_word_rule():
    ex = [{"prompt": "Anna met Bob at the park. Bob smiled at Anna and Bob waved. \"Hello,\" she said to", "target": "Bob"},
          {"prompt": "The rain fell on the roof. The rain was cold. It would not stop, said the", "target": "rain"},
          {"prompt": "Harry saw it. Then he ran to", "target": "Harry"}]
    # Bob (3) beats Anna (2); no capitalised word but The (stop word) -> most frequent content word "rain" (not in
    # the last sentence); Harry is the only capitalised non-stop word before the last sentence
    assert R.context_word(ex) == ["Bob", "rain", "Harry"]
    row = {r.name: r for r in R.reference_rows("lambada", ex)}["context word"]
    assert row.interval.estimate == 1.0


def test_glue_rules_read_labels_only():
    ex = [{"label": 1}, {"label": 1}, {"label": 0}, {"label": 1}]
    rows = R.reference_rows("sst2", ex)
    assert [r.name for r in rows] == ["majority class", "uniform chance"]
    assert rows[0].interval.estimate == 0.75 and rows[1].interval.estimate == 0.5
    assert R.reference_rows("babi", [{"target": "garden"}])[-1].name == "uniform chance"  # no prompts: no heuristic


def test_at_chance_rule_and_diversity():
    refs = R.reference_rows("babi", BABI)  # best: majority class, 0.5
    assert R.is_at_chance(0.5, refs) and R.is_at_chance(0.2, refs) and not R.is_at_chance(0.51, refs)
    assert R.status(0.3, refs) == "at chance" and R.status(0.9, refs) == ""
    assert not R.is_at_chance(0.0, []) and not R.is_at_chance(None, refs)
    d = R.diversity(["hallway", "Hallway", "kitchen", " hallway"])
    assert d == {"distinct": 2, "top_answer": "hallway", "top_share": 0.75, "n": 4}


def test_summary_json_holds_no_object_reprs(tmp_path):
    def safe_perplexity(x):
        return x

    tasks = {"pixar_lambada": {"metric_list": [{"metric": "perplexity", "aggregation": safe_perplexity}]}}
    metrics = [Metric("lambada", "m", "p", "acc", 0.5, 4, 0.15, 0.85, "wilson95", note="at chance")]
    s = write_summary(tmp_path, command="bench lambada", protocol={"acc": "a"}, config={}, seed=0, data={},
                      models=[], files=[], metrics=metrics, lm_eval_tasks=tasks)
    text = (tmp_path / "summary.json").read_text()
    assert " at 0x" not in text and "<function" not in text
    agg = json.loads(text)["lm_eval_tasks"]["pixar_lambada"]["metric_list"][0]["aggregation"]
    assert agg.endswith("test_summary_json_holds_no_object_reprs.<locals>.safe_perplexity")
    assert s["metrics"][0]["note"] == "at chance"

    class Opaque:
        pass

    with pytest.raises(TypeError, match="not JSON data: Opaque"):
        write_summary(tmp_path, command="x", protocol={"acc": "a"}, config={"model": Opaque()}, seed=0, data={},
                      models=[], files=[], metrics=metrics)


def test_glue_bootstrap_intervals_and_chance_notes(tmp_path):
    import numpy as np

    from harness.results.glue_report import bootstrap_metric, glue_metrics
    from harness.results.schema import write_jsonl
    from harness.tasks.glue import matthews_corrcoef, pearson

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = 0.6 * x + 0.8 * rng.normal(size=300)
    iv = bootstrap_metric(pearson, x, y, resamples=1000, seed=1)
    assert iv == bootstrap_metric(pearson, x, y, resamples=1000, seed=1) and iv.method == "bootstrap-percentile"
    # Fisher-z interval of r for n = 300 as the cross-check
    z, half = np.arctanh(iv.estimate), 1.959964 / np.sqrt(300 - 3)
    assert iv.low == pytest.approx(np.tanh(z - half), abs=0.03) and iv.high == pytest.approx(np.tanh(z + half), abs=0.03)
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.bootstrap((x, y), lambda a, b: pearson(a, b), paired=True, vectorized=False, n_resamples=1000,
                                method="percentile", random_state=np.random.default_rng(1)).confidence_interval
    assert iv.low == pytest.approx(ref.low, abs=0.02) and iv.high == pytest.approx(ref.high, abs=0.02)
    # a CoLA-like record: MCC whose interval reaches 0 is at chance; accuracy below the majority label is too
    labels = [1] * 70 + [0] * 30
    preds = [1] * 66 + [0] * 4 + [1] * 26 + [0] * 4
    write_jsonl(tmp_path / "predictions-validation.jsonl",
                [{"idx": i, "label": y_, "prediction": p} for i, (y_, p) in enumerate(zip(labels, preds))])
    acc = sum(a == b for a, b in zip(labels, preds)) / 100
    record = {"model": "pixar-x", "data": {"dev": {"validation": {"n": 100}}},
              "metrics": {"validation": {"accuracy": acc, "mcc": matthews_corrcoef(preds, labels)}}}
    rows = {(m.model, m.metric): m for m in glue_metrics(record, tmp_path, "cola", "validation", "glue fine-tuned dev")}
    assert rows[("pixar-x", "accuracy")].interval == "wilson95" and rows[("pixar-x", "accuracy")].note == "at chance"
    mcc = rows[("pixar-x", "mcc")]
    assert mcc.interval.startswith("bootstrap95") and mcc.ci_low < 0 < mcc.ci_high and mcc.note == "at chance"
    assert rows[("reference: majority class", "accuracy")].value == 0.7
    old = glue_metrics(record, tmp_path / "none", "cola", "validation", "p")  # no predictions file: no bootstrap
    assert {m.metric: m.ci_low is None for m in old} == {"accuracy": False, "mcc": True}
