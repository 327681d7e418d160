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
