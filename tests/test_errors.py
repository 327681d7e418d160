"""One PixarError base: the errors a user can cause print as one line; anything else is a bug with its traceback."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import harness.cli.bench as bench_cli
import harness.cli.train as train_cli
import harness.eval.bench as eval_bench
from attacks import AttackUnavailableError
from harness.app import main
from harness.cli import convert as convert_cli
from harness.cli.errors import one_line, one_line_errors
from harness.eval.protocols import ProtocolError
from harness.models.gpt2_baselines import BaselineError
from harness.results.report import ReportError
from harness.results.schema import ResultsError
from harness.robustness.tasks import AttackConfigError, AttackTaskError
from harness.tasks.common import TaskError
from harness.tasks.glue import GlueDataError
from pixar.checkpoint.store import CheckpointError
from pixar.config_io import ConfigError
from pixar.data.sources import DataError
from pixar.errors import PixarError
from pixar.model import official
from pixar.paths import DataNotFound
from pixar.read.ocr import OCRError, TesseractUnavailable
from pixar.train.adversarial import AdversarialError
from pixar.train.loop import NonFiniteLoss, TrainingError
from pixar.train.runlock import RunLockError

USER_ERRORS = [ConfigError, CheckpointError, DataError, DataNotFound, TrainingError, NonFiniteLoss, AdversarialError,
               RunLockError, OCRError, TesseractUnavailable, TaskError, GlueDataError, BaselineError, AttackConfigError,
               AttackTaskError, AttackUnavailableError, ResultsError, ReportError, ProtocolError]


@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda c: c.__name__)
def test_every_user_error_is_a_pixar_error(cls):
    assert issubclass(cls, PixarError)


def test_builtin_bases_that_callers_catch_are_kept():
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(DataNotFound, FileNotFoundError) and issubclass(CheckpointError, RuntimeError)
    assert issubclass(ProtocolError, ValueError)  # `except ValueError` around protocol parsing still works


def test_one_line_errors_turns_only_pixar_errors_into_one_line():
    @one_line_errors("demo")
    def user_mistake():
        raise ConfigError("configs/x.yaml:3: unknown key 'lr2'\n(known: lr, ...)")

    @one_line_errors("demo")
    def bug():
        raise KeyError("lr")

    with pytest.raises(click.ClickException) as info:
        user_mistake()
    assert info.value.format_message() == "configs/x.yaml:3: unknown key 'lr2'"
    with pytest.raises(KeyError):
        bug()
    assert one_line(ValueError("")) == "ValueError"


def _convert(tmp_path, monkeypatch, error):
    def failing(src, out, max_positions):
        raise error

    monkeypatch.setattr(convert_cli, "convert_official", failing, raising=False)  # imported at module top
    monkeypatch.setattr(official, "convert_official", failing)  # or inside the command
    src = tmp_path / "official"
    src.mkdir()
    return CliRunner().invoke(main, ["convert", str(src), "-o", str(tmp_path / "out")])


def test_command_prints_a_pixar_error_as_one_line(tmp_path, monkeypatch):
    res = _convert(tmp_path, monkeypatch, CheckpointError("official/config.json: missing\nmore detail"))
    assert res.exit_code == 1
    assert res.output == "Error: official/config.json: missing\n"
    assert isinstance(res.exception, SystemExit)


def test_command_keeps_the_traceback_of_a_bug(tmp_path, monkeypatch):
    res = _convert(tmp_path, monkeypatch, ValueError("a bug, not a user mistake"))
    assert res.exit_code == 1
    assert isinstance(res.exception, ValueError) and "a bug" in str(res.exception)
    assert "Error:" not in res.output


@pytest.mark.parametrize("error, one_line_expected", [(ProtocolError("unknown lambada protocol 'papr'"), True),
                                                      (ValueError("bug"), False), (KeyError("bug"), False)])
def test_bench_reports_only_pixar_errors_in_one_line(tmp_path, monkeypatch, error, one_line_expected):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(eval_bench, "run_lambada", failing)
    monkeypatch.setattr(bench_cli, "run_lambada", failing, raising=False)  # also when imported at module top
    res = CliRunner().invoke(main, ["bench", "lambada", "--checkpoint", str(tmp_path / "ckpt"),
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    if one_line_expected:
        assert res.output == "Error: unknown lambada protocol 'papr'\n"
    else:
        assert type(res.exception) is type(error) and "Error:" not in res.output


@pytest.mark.parametrize("error, one_line_expected", [(TrainingError("loss is NaN at step 3"), True),
                                                      (RuntimeError("bug"), False)])
def test_train_reports_only_pixar_errors_in_one_line(tmp_path, monkeypatch, error, one_line_expected):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setitem(train_cli.TRAINERS, "pixar", failing)
    res = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    if one_line_expected:
        assert res.output == "Error: loss is NaN at step 3\n"
    else:
        assert type(res.exception) is RuntimeError and "Error:" not in res.output
