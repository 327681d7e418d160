"""Shared test set-up: offline environment, data-dir fixture, lm-eval Instance helper, a micro checkpoint.

Other test modules may append self-contained fixtures at the end of this file.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    skip = pytest.mark.skip(reason="tesseract binary not installed (apt-get install tesseract-ocr)")
    for item in items:
        if "requires_tesseract" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """$PIXAR_DATA as a Path; tests that need real data skip cleanly without it."""
    value = os.environ.get("PIXAR_DATA")
    if not value or not Path(value).is_dir():
        pytest.skip("PIXAR_DATA is not set (real data needed)")
    return Path(value)


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


@pytest.fixture
def one_thread():
    """torch on one thread for the test (the distributed tests' ranks run one each), the old count restored."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
