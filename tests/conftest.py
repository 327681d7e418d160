"""Shared test set-up: offline environment, the fixtures every module may use (data folder, a seeded corpus,
a micro checkpoint, torch threads), the lm-eval Instance helper.

Data rule: a test that needs real data, a font or Tesseract skips without it (tests/helpers.need_data), and
FAILS instead under PIXAR_REQUIRE_DATA=1 (what .ci/run sets when the data folder exists), so a CI machine with
the data cannot pass by skipping. Plain helper functions live in tests/helpers.py, not in test modules.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from helpers import need_data, require_data

# Nothing in the test suite may touch the network; tesseract is faster single-threaded.
for _key, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "TOKENIZERS_PARALLELISM": "false", "OMP_THREAD_LIMIT": "1"}.items():
    os.environ.setdefault(_key, _value)


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_tesseract: needs the tesseract binary (skipped without it)")


def pytest_collection_modifyitems(config, items):
    if not any("requires_tesseract" in item.keywords for item in items):
        return
    from pixar.read.ocr import tesseract_available

    if tesseract_available():
        return
    if require_data():
        raise pytest.UsageError("PIXAR_REQUIRE_DATA=1 but the tesseract binary is not installed "
                                "(apt-get install tesseract-ocr)")
    skip = pytest.mark.skip(reason="tesseract binary not installed (apt-get install tesseract-ocr)")
    for item in items:
        if "requires_tesseract" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """$PIXAR_DATA as a Path; tests that need real data skip cleanly without it."""
    value = os.environ.get("PIXAR_DATA")
    if not value or not Path(value).is_dir():
        need_data("PIXAR_DATA is not set (real data needed)")
    return Path(value)


@pytest.fixture(scope="session")
def pixeloid_font() -> Path:
    """The Pixeloid Sans font file (pixar-render's or $PIXAR_DATA's)."""
    from pixar.paths import DataNotFound, find_font

    try:
        return Path(find_font("pixeloid"))
    except DataNotFound as e:
        need_data(str(e))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, pixeloid_font) -> Path:
    """A small seeded pseudo-English corpus (about 250 chunks of 20..80 characters) for micro training runs."""
    rng = random.Random(0)
    words = "the a of and to in was he it his that with had for as at her on by said Emma whale lantern".split()
    text = "\n\n".join(" ".join(" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))).capitalize() + "."
                                for _ in range(5)) for _ in range(200))
    path = tmp_path_factory.mktemp("corpus") / "book.txt"
    path.write_text(text)
    return path


def make_instance(request_type: str, arguments: tuple, idx: int = 0, doc: dict | None = None,
                  task_name: str = "test", doc_id: int = 0):
    """One lm-eval Instance, built in one place so an lm-eval API bump touches only this helper."""
    from lm_eval.api.instance import Instance

    return Instance(request_type=request_type, doc=doc or {}, arguments=arguments, idx=idx,
                    metadata=(task_name, doc_id, 1))


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory) -> Path:
    """A random-init pixar-micro (configs/pixar-micro.yaml) checkpoint directory, seeded."""
    import torch

    from pixar.checkpoint.store import save_checkpoint
    from pixar.config import PixarConfig, preset_path
    from pixar.model.transformer import Pixar

    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"))
    torch.manual_seed(0)
    model = Pixar(cfg.model)
    path = tmp_path_factory.mktemp("ckpt") / "pixar-micro-random"
    save_checkpoint(path, model, cfg, meta={"step": 0, "note": "random init for tests"})
    return path


@pytest.fixture(autouse=True)
def _restore_threads():
    """Training runs set torch's thread count (train.threads): every test leaves it as it found it."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (the distributed tests' ranks run one each), the old count restored."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
