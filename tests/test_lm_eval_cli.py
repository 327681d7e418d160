"""`pixar lm-eval` and PixarLM as lm-eval users drive them: every lm-eval option passed through, our tasks in a
named folder written once (never a temp folder, never merged with foreign Python), pretrained= accepted,
unknown arguments refused, pixel NLL never shown as a perplexity."""
import json

import pytest
from click.testing import CliRunner

from harness.cli.lm_eval import default_tasks_dir, lm_eval_run_options, prepare_argv, task_configs
from harness.models.lm_eval_adapter import PixarLM, PixarLMArgumentError
from harness.tasks import lambada
from harness.tasks.common import OWNED_MARKER, TaskError, in_pixels, write_task_yaml


def _lambada_file(tmp_path):
    data = tmp_path / "data" / "lambada"
    data.mkdir(parents=True)
    (data / "lambada_test.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in
                                                      ["the cat sat on the mat", "he opened the door"]))
    return tmp_path / "data"


def test_task_folder_is_named_written_once_and_shared_by_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXAR_CACHE", str(tmp_path / "cache"))
    data = _lambada_file(tmp_path)
    argv, include = prepare_argv(["--model", "pixar", "--data-dir", str(data), "--tasks", "pixar_lambada"])
    folder = default_tasks_dir(task_configs(str(data), "pixel"), "pixel")
    assert include == [str(folder.resolve())] and folder.parent == tmp_path / "cache" / "lm-eval-tasks"
    # lm-eval's CLI defaults (cuda:0, batch 1) are replaced by what PixarLM runs, so lm-eval records that
    assert argv[:4] == ["--model", "pixar", "--tasks", "pixar_lambada"] and argv[argv.index("--device") + 1] in ("cpu", "cuda")
    assert argv[argv.index("--batch_size") + 1] == "8"
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    prepare_argv(["--model", "pixar", "--data-dir", str(data), "--tasks", "pixar_lambada", "--device", "cpu"])
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes  # written once, not rewritten
    text = (folder / "pixar_lambada.yaml").read_text()
    assert "pixel_nll" in text and "perplexity" not in text  # pixel NLL is never labelled a perplexity
    hf_argv, hf_include = prepare_argv(["--model", "hf", "--data-dir", str(data), "--tasks", "pixar_lambada"])
    assert "--device" not in hf_argv and hf_include[-1] != include[-1]  # token metrics: another folder
    assert "perplexity" in (tmp_path / hf_include[-1] / "pixar_lambada.yaml").read_text()


def test_foreign_python_or_a_foreign_folder_is_refused_never_merged(tmp_path):
    data = _lambada_file(tmp_path)
    cfgs = [lambada.lm_eval_task(data / "lambada" / "lambada_test.jsonl")]
    folder = tmp_path / "tasks"
    write_task_yaml(cfgs, folder)
    ours = (folder / "utils.py").read_text()
    (folder / "utils.py").write_text(ours + "import os; os.system('echo pwned')\n")
    with pytest.raises(TaskError, match="utils.py: Python file not written by pixar"):
        write_task_yaml(cfgs, folder)
    assert "pwned" in (folder / "utils.py").read_text()  # refused, not rewritten over (the user sees it)
    (folder / "utils.py").write_text(ours)
    (folder / "evil.py").write_text("print('x')\n")
    with pytest.raises(TaskError, match="evil.py"):
        write_task_yaml(cfgs, folder)
    other = tmp_path / "someone-elses"
    other.mkdir()
    (other / "task.yaml").write_text("task: x\n")
    with pytest.raises(TaskError, match="not a pixar task folder"):
        write_task_yaml(cfgs, other)
    assert not (other / "utils.py").exists() and not (other / OWNED_MARKER).exists()


def test_cli_refuses_foreign_python_with_one_line(tmp_path):
    from harness.cli.lm_eval import lm_eval_command

    data = _lambada_file(tmp_path)
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / OWNED_MARKER).write_text("x\n")
    (folder / "utils.py").write_text("import os\n")
    r = CliRunner().invoke(lm_eval_command, ["--model", "pixar", "--model_args", "pretrained=x", "--data-dir",
                                             str(data), "--tasks-dir", str(folder), "--tasks", "pixar_lambada"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.strip().splitlines() == [f"Error: {folder / 'utils.py'}: Python file not written by pixar in the "
                                             "task folder; refusing to let lm-eval import it (delete it, or use "
                                             "another --tasks-dir)"]


def test_help_lists_lm_eval_options_and_ours():
    from harness.cli.lm_eval import lm_eval_command

    r = CliRunner().invoke(lm_eval_command, ["--help"])
    assert r.exit_code == 0 and "--tasks-dir" in r.output and "--data-dir" in r.output
    for opt in ("--model_args", "--include_path", "--limit", "--log_samples", "--output_path", "--use_cache"):
        assert opt in r.output and opt in lm_eval_run_options()


def test_pixel_metrics_only_for_loglikelihood_tasks(tmp_path):
    data = _lambada_file(tmp_path)
    cfg = lambada.lm_eval_task(data / "lambada" / "lambada_test.jsonl")
    px = in_pixels(cfg)
    assert [m["metric"] for m in px["metric_list"]] == ["acc", "pixel_nll"]
    assert px["process_results"]({}, [(-12.5, True)]) == {"acc": 1, "pixel_nll": 12.5}
    assert cfg["metric_list"] != px["metric_list"]  # the token tasks (GPT-2, bench) keep their metrics
    gen = {"task": "g", "output_type": "generate_until", "process_results": None}
    assert in_pixels(gen) is gen


def test_adapter_takes_pretrained_and_refuses_what_it_does_not_know(micro_checkpoint):
    lm = PixarLM.create_from_arg_string(f"pretrained={micro_checkpoint}", {"batch_size": 3, "device": "cpu"})
    assert lm.runner.batch_size == 3 and str(lm.runner.device) == "cpu" and lm.batch_sizes == {0: 3}
    info = lm.get_model_info()
    assert info["device_used"] == "cpu" and info["batch_size_used"] == 3
    alias = PixarLM.create_from_arg_string(f"checkpoint={micro_checkpoint}")
    assert alias.runner.info["checkpoint"] == lm.runner.info["checkpoint"]
    with pytest.raises(PixarLMArgumentError, match=r"unknown model argument\(s\) ocr_engine"):
        PixarLM.create_from_arg_string(f"pretrained={micro_checkpoint},ocr_engine=tesseract")
    with pytest.raises(PixarLMArgumentError, match="ocr must be one of"):
        PixarLM(pretrained=str(micro_checkpoint), ocr="paddle")
    with pytest.raises(PixarLMArgumentError, match="needs pretrained="):
        PixarLM()


def test_adapter_refuses_an_absent_cuda_device(micro_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(PixarLMArgumentError, match="device cuda:0 is not available"):
        PixarLM(pretrained=str(micro_checkpoint), device="cuda:0")
