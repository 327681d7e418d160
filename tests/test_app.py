"""The `pixar` root: every command registered lazily, and log lines that never share a line with a progress bar."""
import io
import logging

from click.testing import CliRunner

from harness.app import COMMANDS, TqdmHandler, main


def test_every_command_is_listed_and_loads():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    for name in COMMANDS:
        assert name in r.output
        assert main.get_command(None, name) is not None, name


def test_a_log_record_during_a_progress_bar_gets_its_own_line():
    from tqdm import tqdm

    stream = io.StringIO()
    log = logging.getLogger("test_app.bar")
    handler = TqdmHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    try:
        with tqdm(total=3, file=stream, mininterval=0, ascii=True) as bar:
            bar.update(1)
            log.warning("step %d: loss %.2f", 1, 0.5)
            bar.update(1)
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().replace("\r", "\n").split("\n")
    assert "WARNING test_app.bar: step 1: loss 0.50" in lines  # alone on its line, not glued to the bar
