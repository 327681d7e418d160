"""Task data and definitions: bAbI parser + prompt formats on the real files, the seeded task-1 generator,
the LAMBADA loader, task YAML for lm-eval's CLI, and `pixar bench lambada|babi` end to end."""
import json
import re

import pytest
from click.testing import CliRunner

from harness.tasks import babi_generator as babi_gen
from harness.tasks import babi, lambada
from harness.tasks.common import TaskError, write_task_yaml


# ---- bAbI files --------------------------------------------------------------------------------
def test_babi_all_tasks_parse_with_1000_questions(data_dir):
    folder = babi.babi_dir("en", data_dir)
    for t in babi.TASK_IDS:
        for split in ("train", "test"):
            qs = babi.load_babi(t, split, folder)
            assert len(qs) == 1000, (t, split)
            assert all(q.answer and q.question for q in qs)
    assert babi.task_name(1, folder) == "qa1_single-supporting-fact"
    assert len(babi.load_babi(2, "train", babi.babi_dir("en-10k", data_dir))) == 10000


def test_babi_paper_and_lm_eval_formats_on_real_task1(data_dir):
    folder = babi.babi_dir("en", data_dir)
    first, second = babi.load_babi(1, "test", folder)[:2]
    lines = (folder / "qa1_single-supporting-fact_test.txt").read_text().splitlines()
    s1, s2 = (re.sub(r"^\d+ ", "", ln) for ln in lines[:2])
    assert first.paper_prompt() == f"{s1} {s2} Where is John? |" and first.answer == "hallway"
    assert second.paper_prompt().startswith(f"{s1} {s2} Where is John? | hallway ")
    assert second.paper_prompt().endswith(" Where is Mary? |") and second.answer == "bathroom"
    assert second.finetune_text() == second.paper_prompt() + " bathroom"
    doc = second.lm_eval_doc()
    assert doc["passage"].count("\n") == 4 and "Where" not in doc["passage"] and doc["passage"].startswith(s1 + "\n")
    assert doc["question"] == "Where is Mary?" and doc["answer"] == "bathroom"
    assert babi.load_babi(19, "test", folder)[0].answer == "s,s"


def test_babi_bad_input_names_file_and_line(tmp_path):
    bad = tmp_path / "qa1_x_test.txt"
    bad.write_text("1 Mary moved to the bathroom.\nno number here\n")
    with pytest.raises(TaskError, match=r"qa1_x_test.txt:2"):
        babi.parse_babi_file(bad)
    with pytest.raises(TaskError, match="unknown bAbI task"):
        babi.parse_task_list("1,25")
    with pytest.raises(TaskError, match="not a number"):
        babi.parse_task_list("1,x")
    assert babi.parse_task_list("3,1-2") == [1, 2, 3] and len(babi.parse_task_list("all")) == 20
    with pytest.raises(FileNotFoundError, match="qa2"):
        babi.babi_file(2, "test", tmp_path)


# ---- the generator -------------------------------------------------------------------------------
def test_generator_is_deterministic_and_seeded():
    a = babi_gen.format_stories(babi_gen.generate_task1(23, seed=7))
    assert a == babi_gen.format_stories(babi_gen.generate_task1(23, seed=7))
    assert a != babi_gen.format_stories(babi_gen.generate_task1(23, seed=8))


def test_generator_format_and_answers_are_consistent(tmp_path):
    paths = babi_gen.write_task1(tmp_path, train=50, test=12, seed=3)
    qs = babi.parse_babi_file(paths["train"], 1)
    assert len(qs) == 50 and len(babi.parse_babi_file(paths["test"])) == 12
    text = paths["train"].read_text().splitlines()
    assert re.fullmatch(r"3 Where is (Mary|John|Sandra|Daniel)\? \t\w+\t\d+", text[2])
    move = re.compile(r"^(Mary|John|Sandra|Daniel) (moved|went|journeyed|travelled|went back) to the "
                      r"(bathroom|hallway|garden|office|bedroom|kitchen)\.$")
    for q in qs:
        where = {}
        for n, (line, ans) in enumerate(q.context, 1):
            if ans is None:
                m = move.match(line)
                assert m, line
                assert where.get(m.group(1), (None,))[0] != m.group(3)  # a move goes somewhere new
                where[m.group(1)] = (m.group(3), n)
        actor = q.question.split()[-1].rstrip("?")
        assert where[actor] == (q.answer, q.support[0])  # answer + supporting fact from the story
        assert len(q.context) % 3 == 2 and len(q.context) <= 14  # 2 moves per question, 5 per story


# ---- LAMBADA --------------------------------------------------------------------------------------
def test_lambada_loader_has_5153_passages(data_dir):
    texts = lambada.load_lambada(data_dir)
    assert len(texts) == lambada.LAMBADA_SIZE == 5153
    ctx, target = lambada.split_passage(texts[0])
    assert ctx + " " + target == texts[0] and " " not in target and target
    ex = lambada.paper_examples(texts[:2])
    assert ex[1] == {"idx": 1, "prompt": lambada.split_passage(texts[1])[0], "target": lambada.split_passage(texts[1])[1]}


def test_lambada_bad_file_names_line(tmp_path):
    f = tmp_path / "l.jsonl"
    f.write_text('{"text": "a b"}\n{"txt": 1}\n')
    with pytest.raises(TaskError, match=r"l.jsonl:2"):
        lambada.load_lambada(path=f)


def test_lambada_original_loader(data_dir):
    texts = lambada.load_lambada_original(data_dir)
    assert len(texts) == lambada.LAMBADA_SIZE and lambada.lambada_original_path(data_dir).name == "lambada_test_plain_text.txt"
    ctx, target = lambada.split_original(texts[0])
    assert target == "signs" and ctx.endswith("i do n't care about") and ctx + " " + target == " ".join(texts[0].split())
    assert lambada.load_lambada(data_dir)[0].endswith("I don't care about signs")  # the default is unchanged


def test_lambada_original_bad_input(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("the cat sat\n\nand so on\n")
    with pytest.raises(TaskError, match=r"plain.txt:2"):
        lambada.load_lambada_original(path=f)
    with pytest.raises(TaskError, match="context and a target"):
        lambada.split_original("alone")
    with pytest.raises(FileNotFoundError, match="plain-text file not found"):
        lambada.load_lambada_original(path=tmp_path / "none.txt")


def test_babi_generated_and_last_question_per_story():
    qs = babi.generated_task1(6, seed=2)
    assert len(qs) == 30 and {q.story for q in qs} == set(range(6)) and qs[0].source.startswith("babi_gen(stories=6")
    last = babi.last_question_per_story(qs)
    assert [q.story for q in last] == list(range(6)) and all(len(q.context) == 14 for q in last)
    assert last[0] is qs[4] and last[0].paper_prompt().count(" | ") == 4


def test_task_yaml_loads_in_lm_eval(tmp_path):
    from lm_eval.tasks import TaskManager, get_task_dict

    data = tmp_path / "lam.jsonl"
    data.write_text('{"text": "the cat sat"}\n{"text": "a b c"}\n')
    paths = babi_gen.write_task1(tmp_path / "b", train=2, test=3, seed=0)
    write_task_yaml([lambada.lm_eval_task(data, "lam_yaml"), babi.lm_eval_task(1, paths["test"], "babi_yaml")],
                    tmp_path / "tasks")
    assert "!function utils.lambada__custom_dataset" in (tmp_path / "tasks" / "lam_yaml.yaml").read_text()
    tm = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    tasks = get_task_dict(["lam_yaml", "babi_yaml"], tm)
    assert len(list(tasks["lam_yaml"].test_docs())) == 2 and len(list(tasks["babi_yaml"].test_docs())) == 3


# ---- pixar bench ----------------------------------------------------------------------------------
def _bench(args):
    from harness.cli.bench import bench

    return CliRunner().invoke(bench, args, catch_exceptions=False)


def _metrics(summary: dict, protocol: str) -> dict[str, dict]:
    """The model's scores under a protocol (its run label: `+fit<N>` when it cut prompts); reference rows and the
    answer-diversity counts are left out."""
    labels = {f["label"] for f in summary.get("fits", []) if f["protocol"] == protocol} or {protocol}
    return {m["metric"]: m for m in summary["metrics"] if m["protocol"] in labels
            and not m["model"].startswith("reference: ") and m["metric"] not in ("distinct_answers", "top_answer_share")}


def test_cli_bench_lambada_limit_3_writes_results(micro_checkpoint, data_dir, tmp_path):
    from harness.eval.protocols import get_protocol, load_examples

    out = tmp_path / "res"
    r = _bench(["lambada", "--checkpoint", str(micro_checkpoint), "--limit", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocols"] == ["paper", "lm-eval"]
    assert summary["data"]["protocols"]["lambada:paper"] == {"source": "lambada/lambada_test_plain_text.txt",
                                                            "n_total": 5153, "n_evaluated": 3}
    assert summary["data"]["lm-eval"]["n_evaluated"] == 3
    # the official protocol: every reading engine and their union, each with a Wilson interval, over the 3 passages
    paper = _metrics(summary, "lambada:paper")
    assert set(paper) == {"acc_glyph", "acc_tesseract", "acc_union", "readability", "readability_glyph",
                          "readability_tesseract", "readability_strict", "readability_strict_glyph",
                          "readability_strict_tesseract"}  # the paper's union, per engine, the strict variant
    assert all(m["n"] == 3 and m["interval"] == "wilson95" and m["ci_low"] <= m["value"] <= m["ci_high"]
               for m in paper.values())
    fit = summary["fits"][0]  # the micro model's 48 positions cut all 3 passages: the label and counts say so
    assert (fit["protocol"], fit["cut"], fit["n"], fit["label"]) == ("lambada:paper", 3, 3, f"lambada:paper+fit{fit['budget']}")
    preds = [json.loads(x) for x in (out / f"predictions-pixar_ckpt0_pixar-micro-random-lambada_paper_fit{fit['budget']}.jsonl")
             .read_text().splitlines()]
    gold = load_examples(get_protocol("lambada", "paper"), data_dir)[:3]
    assert [p["target"] for p in preds] == [g["target"] for g in gold] and [p["idx"] for p in preds] == [0, 1, 2]
    assert all(p["correct_union"] == any(p["correct"].values()) and set(p["read"]) == {"glyph", "tesseract"}
               and 40 <= p["context_positions"] <= 48 - 4 for p in preds)  # long passages fill the budget
    assert paper["acc_union"]["value"] == pytest.approx(sum(p["correct_union"] for p in preds) / 3)
    assert paper["readability"]["value"] == pytest.approx(sum(p["readable"] for p in preds) / 3)
    assert all(p["readable"] == any(p["readable_by"].values()) for p in preds)
    assert paper["readability_glyph"]["value"] == pytest.approx(sum(p["readable_by"]["glyph"] for p in preds) / 3)
    row = summary["rows"][0]  # lm-eval: pixel NLL, never in a token column
    assert row["n"] == 3 and row["lm_eval_pixel_nll"] > 0 and "lm_eval_token_nll" not in row
    table = (out / "table.md").read_text()
    assert "lm-eval: pixel NLL per target (nats)" in table and f"lambada:paper+fit{fit['budget']}: acc_union" in table
    assert "| reference: majority class |" in table and "lambada:paper: acc_reference" in table
    assert (out / "table.csv").is_file() and not (out / "tasks").exists()  # results hold data, no task code
    assert summary["lm_eval_tasks"]["pixar_lambada"]["dataset_kwargs"]
    assert "pixar_lambada" in r.output  # lm-eval's make_table was printed
    from harness.results.tables import collect

    df = collect(tmp_path)
    assert df["n"].tolist() == [3] * len(df) and "lm-eval: pixel NLL per target (nats)" in df.columns
    with pytest.raises(ValueError, match="unlabelled metric"):
        comparison_table([{"task": "x", "model": "m", "perplexity": 3.0}])


def comparison_table(rows: list[dict]):
    """Rows of {id columns..., metric keys...} -> DataFrame with labelled metric columns (unused ones dropped);
    an unlabelled metric column is refused (the rule harness.results.tables.METRIC_LABELS keeps)."""
    import pandas as pd

    from harness.results.tables import ID_COLUMNS, METRIC_LABELS

    df = pd.DataFrame(rows)
    ids = [c for c in ID_COLUMNS if c in df.columns]
    metrics = [k for k in METRIC_LABELS if k in df.columns and df[k].notna().any()]
    unknown = [c for c in df.columns if c not in ids and c not in METRIC_LABELS]
    if unknown:
        raise ValueError(f"unlabelled metric column(s) {unknown}: add them to harness.results.tables.METRIC_LABELS")
    return df[ids + metrics].rename(columns=METRIC_LABELS)


def test_cli_bench_babi_finetune_on_generated_data(micro_checkpoint, tmp_path):
    folder = tmp_path / "gen"
    babi_gen.write_task1(folder, train=20, test=4, seed=0)
    out = tmp_path / "res"
    r = _bench(["babi", "--checkpoint", str(micro_checkpoint), "--babi-dir", str(folder), "--protocol", "paper",
                "--protocol", "paper-all-questions", "--limit", "4", "--ocr", "glyph",
                "--finetune", "--finetune-steps", "2", "--finetune-batch", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    official, ours = _metrics(summary, "babi:paper[glyph]"), _metrics(summary, "babi:paper-all-questions[glyph]")
    from pixar.paths import data_dir

    # --ocr glyph: one reading, no union; readability needs the paper's vocabulary (unigram_freq, in the data folder)
    assert set(official) == set(ours) == ({"acc_glyph", "readability", "readability_strict"} if data_dir()
                                          else {"acc_glyph"})
    assert official["acc_glyph"]["n"] == 4 and ours["acc_glyph"]["n"] == 4
    counts = summary["data"]["tasks"]
    assert counts["qa1 babi:paper[glyph]"]["n_total"] == 10000  # one sample per generated story
    assert not any(k.endswith("lm-eval") for k in counts)
    fit = next(f for f in summary["fits"] if f["protocol"] == "babi:paper[glyph]")
    preds = [json.loads(x) for x in (out / f"predictions-pixar_ckpt0_pixar-micro-random-babi_paper_glyph__fit{fit['budget']}-qa1.jsonl")
             .read_text().splitlines()]
    assert len(preds) == 4 and all(p["target"] and "|" not in p["target"] for p in preds)
    log = [json.loads(x) for x in (out / "finetune-pixar_ckpt0_pixar-micro-random-qa1.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and log[-1]["loss"] > 0


@pytest.mark.parametrize("args,message", [
    (["lambada", "--checkpoint", "/nonexistent/ckpt", "--limit", "1"], "checkpoint directory does not exist"),
    (["babi", "--checkpoint", "CKPT", "--tasks", "21"], "unknown bAbI task"),
    (["babi", "--checkpoint", "CKPT", "--babi-dir", "/nonexistent/babi"], "bAbI folder not found"),
    (["lambada", "--limit", "1"], "--checkpoint DIR and/or --baseline"),
    (["lambada", "--checkpoint", "CKPT", "--protocol", "paper-nonsense"], "unknown lambada protocol 'paper-nonsense'"),
    (["babi", "--checkpoint", "CKPT", "--tasks", "2", "--protocol", "paper"], "defined on generated task-1 stories"),
])
def test_cli_errors_are_one_line(args, message, micro_checkpoint, request):
    from harness.cli.bench import bench

    if "/nonexistent/ckpt" in args:
        request.getfixturevalue("data_dir")  # the data is checked first; needs PIXAR_DATA
    args = [str(micro_checkpoint) if a == "CKPT" else a for a in args]
    r = CliRunner().invoke(bench, args)
    assert r.exit_code != 0 and message in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert "Traceback" not in r.output and len(errors) == 1 and message in errors[0]  # one line, naming the problem


def test_lm_eval_cli_wrapper_prepares_include_path(data_dir, tmp_path):
    from harness.cli.lm_eval import prepare_argv

    argv, include = prepare_argv(["--model", "hf", "--data-dir", str(data_dir), "--tasks-dir", str(tmp_path / "t"),
                                  "--tasks", "pixar_lambada", "--include_path", "mine"])
    assert argv == ["--model", "hf", "--tasks", "pixar_lambada"]
    assert include == ["mine", str((tmp_path / "t").resolve())]  # the user's folder kept, ours added
    names = {p.stem for p in (tmp_path / "t").glob("*.yaml")}
    assert names == {"pixar_lambada"} | {f"pixar_babi_qa{i}" for i in range(1, 21)}
    assert str((data_dir / "lambada" / "lambada_test.jsonl").resolve()) in (tmp_path / "t" / "pixar_lambada.yaml").read_text()


def test_finetune_lowers_the_loss_on_its_own_data(micro_checkpoint):
    """`--finetune` trains on the evaluation layout: the fine-tuned copy's masked pixel BCE on its (prompt, answer)
    pairs falls well below the base model's, and the base model is left untouched."""
    import torch

    from harness.models.finetune import TaskFinetuneConfig
    from harness.models.pixar_runner import PixarRunner
    from pixar.model.transformer import masked_bce

    qs = babi.generated_task1(8, seed=0)
    pairs = [(q.paper_prompt(), q.answer) for q in qs][:12]
    base = PixarRunner.load(str(micro_checkpoint))
    before = {k: v.clone() for k, v in base.model.state_dict().items()}

    def loss(runner) -> float:
        pos, mask = runner.compose([p for p, _ in pairs], [" " + a for _, a in pairs])
        with torch.no_grad():
            return float(masked_bce(runner.model.head(runner.model.hidden_states(pos)), pos, mask))

    tuned = base.finetune(pairs, TaskFinetuneConfig.of(steps=40, lr=3e-3, batch_size=4, seed=0))
    assert tuned.finetuned and len(tuned.finetune_log) >= 2
    assert loss(tuned) < 0.8 * loss(base)
    assert tuned.finetune_log[-1]["loss"] < tuned.finetune_log[0]["loss"]
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in before.items())


def test_bench_babi_paper_protocol_without_a_data_folder(micro_checkpoint, tmp_path, monkeypatch):
    """Offline without $PIXAR_DATA (the demo's no-data path): the official bAbI protocol runs on generated stories;
    readability, whose word list lives in the data folder, is left out rather than failing the run."""
    monkeypatch.delenv("PIXAR_DATA", raising=False)
    folder = tmp_path / "gen"
    babi_gen.write_task1(folder, train=4, test=2, seed=0)
    out = tmp_path / "res"
    r = _bench(["babi", "--checkpoint", str(micro_checkpoint), "--babi-dir", str(folder), "--protocol", "paper",
                "--limit", "3", "--ocr", "glyph", "--out", str(out)])
    assert r.exit_code == 0, r.output
    paper = _metrics(json.loads((out / "summary.json").read_text()), "babi:paper[glyph]")
    assert set(paper) == {"acc_glyph"} and paper["acc_glyph"]["n"] == 3
