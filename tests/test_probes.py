"""The reliability probe suite (issue 23): every probe in tests/probes.py (run by tests/probe_kit.py) (bad input, corrupt files, faults,
security, huge sizes) gives its expected exit code and one matching `Error:` line, no traceback, and leaves
every file that existed before untouched. Add a probe to the table for each new refusal: the count only grows."""
from __future__ import annotations

import pytest

from probe_kit import CATEGORIES, build_world, run_probe
from probes import PROBES


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread_module):
    return build_world(tmp_path_factory.mktemp("probe-world") / "world")


@pytest.fixture(scope="module")
def one_thread_module():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_the_table_is_well_formed():
    ids = [p.id for p in PROBES]
    assert len(ids) == len(set(ids)), "probe ids are unique"
    assert {p.category for p in PROBES} == set(CATEGORIES)
    assert len(PROBES) >= 90


@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_probe(probe, world, tmp_path):
    o = run_probe(probe, world, tmp_path / "w")
    assert o.kind == "clean", f"{probe.id}: {o.kind}: {o.detail}\n--- output ---\n{o.output}\nlost: {o.lost}"
