"""Issue 23 at the library level: what the probe suite (tests/test_probes.py) cannot see from the command line --
nothing replaced that is not a checkpoint, stale temp folders cleaned, disk full as one line with the previous
checkpoint kept, shard digests verified and cached by stat key, raw sources keyed on content, one prepare per
folder, resume without a `last` pointer, a changed config refused on --resume unless allowed (and recorded)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from click.testing import CliRunner
from safetensors import SafetensorError

import pixar.checkpoint.store as store
import pixar.data.hashing as hashing
from pixar.checkpoint.store import CheckpointError, latest_checkpoint, save_checkpoint, save_step_checkpoint
from pixar.config import OptimConfig, PixarConfig, TrainConfig, preset_path
from pixar.config_io import ConfigError
from pixar.data.dataset import HASH_CACHE, open_dataset, read_manifest, verify_shards
from pixar.data.prepare import PrepareLock, packing_config, prepare
from pixar.data.sources import DataError
from pixar.model.generate import generate_from_text
from pixar.model.transformer import Pixar, load_model
from pixar.render.renderer import Renderer
from pixar.train.preempt import resume_checkpoint

from probe_kit import SENTENCES, tree_digest

MICRO = PixarConfig.from_yaml(preset_path("pixar-micro"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXAR_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Pixar(MICRO.model)


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(" ".join(SENTENCES[(i + k) % 6] for k in range(4)) for i in range(40)) + "\n")
    return f


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def run_folder(tmp_path, model, steps=(1, 2)):
    out = tmp_path / "run"
    for s in steps:
        save_step_checkpoint(out, s, model, MICRO, state={"step": s})
    return out


# ---- never replacing what is not a checkpoint ------------------------------------------------------------
def test_a_checkpoint_save_never_replaces_a_run_or_a_dataset_but_replaces_a_checkpoint(tmp_path, model, corpus):
    run = run_folder(tmp_path, model)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    data = tmp_path / "data"
    prepare([str(corpus)], data, packing_config(MICRO.train))
    for folder in (run, data):
        before = tree_digest(folder)
        with pytest.raises(CheckpointError, match="exists and is a folder that is not a checkpoint") as e:
            save_checkpoint(folder, model, MICRO)
        assert "\n" not in str(e.value) and tree_digest(folder) == before
    ckpt = save_checkpoint(tmp_path / "ckpt", model, MICRO, meta={"v": 1})
    save_checkpoint(ckpt, model, MICRO, meta={"v": 2})  # a checkpoint is replaced whole
    assert json.loads((ckpt / "meta.json").read_text())["v"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt")) == ["ckpt"]


def test_stale_temp_folders_of_dead_processes_are_removed_on_the_next_save(tmp_path, model):
    run = run_folder(tmp_path, model, (1,))
    dead, alive = dead_pid(), os.getppid()
    for name in (f"step-0000002.tmp-{dead}", f"step-0000002.old-{dead}", f"step-0000002.tmp-{alive}"):
        (run / name).mkdir()
        (run / name / "model.safetensors").write_bytes(b"x" * 100)
    save_step_checkpoint(run, 2, model, MICRO, state={"step": 2})
    assert sorted(p.name for p in run.iterdir()) == ["last", "step-0000001", "step-0000002", f"step-0000002.tmp-{alive}"]


def test_disk_full_mid_checkpoint_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, model, monkeypatch):
    run = run_folder(tmp_path, model, (1,))
    before = tree_digest(run)

    def full(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')
    monkeypatch.setattr(store, "save_file", full)
    with pytest.raises(CheckpointError) as e:
        save_step_checkpoint(run, 2, model, MICRO, state={"step": 2})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("no space left on device while writing") and "step-0000002" in msg
    assert "previous checkpoint" in msg and "step-0000001 kept" in msg
    assert tree_digest(run) == before and latest_checkpoint(run).name == "step-0000001"


# ---- pointers and resume ---------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["../base/step-0000001", "/etc", "..", "a/b", 7, ""])
def test_a_last_pointer_names_a_folder_inside_its_run(tmp_path, model, target):
    run = run_folder(tmp_path, model, (1,))
    (run / "last").write_text(json.dumps({"step": 1, "path": target}))
    with pytest.raises(CheckpointError, match="outside its run folder"):
        latest_checkpoint(run)


def test_resume_without_a_pointer_takes_the_newest_complete_step(tmp_path, model):
    run = run_folder(tmp_path, model, (1, 2, 3))
    (run / "last").unlink()
    (run / "step-0000003" / "state.json").unlink()  # incomplete
    assert resume_checkpoint(run, "auto").name == "step-0000002"
    assert resume_checkpoint(run, "true").name == "step-0000002"
    for p in run.glob("step-*"):
        (p / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no 'last' pointer and no complete step checkpoint"):
        resume_checkpoint(run, "auto")


def test_resume_refuses_a_changed_config_unless_allowed_and_records_the_change(tmp_path, corpus, one_thread):
    from harness.app import main

    out = tmp_path / "run"
    base = ["train", "--config", "pixar-micro", "--out", str(out), "--device", "cpu", "--set", f"train.data=[{corpus}]",
            "--set", "train.eval_every=0", "--set", "train.sample_every=0", "--set", "train.save_every=2"]
    r = CliRunner().invoke(main, base + ["--set", "train.steps=2"])
    assert r.exit_code == 0, r.output
    before = tree_digest(out)
    r = CliRunner().invoke(main, base + ["--set", "train.steps=4", "--set", "train.optim.lr=0.01", "--resume", "auto"])
    assert r.exit_code == 1 and "train.optim.lr: 0.002 -> 0.01" in r.output and "--allow-config-change" in r.output
    assert tree_digest(out) == before
    r = CliRunner().invoke(main, base + ["--set", "train.steps=4", "--resume", "auto"])  # more steps: the same run
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, base + ["--set", "train.steps=6", "--set", "train.optim.lr=0.01", "--resume", "auto",
                                         "--allow-config-change"])
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    [change] = [rec for rec in records if rec.get("event") == "config_change"]
    assert change["step"] == 4 and change["changed"] == {"train.optim.lr": [0.002, 0.01]}
    assert json.loads((out / "last").read_text())["step"] == 6


# ---- datasets: digests, content keys, one writer ---------------------------------------------------------
def test_shard_digests_are_verified_once_and_a_same_size_edit_is_caught_even_with_its_mtime_restored(
        tmp_path, corpus, monkeypatch):
    data = tmp_path / "data"
    prepare([str(corpus)], data, packing_config(MICRO.train))
    calls = []
    real = hashing.file_sha256
    monkeypatch.setattr(hashing, "file_sha256", lambda p: calls.append(p) or real(p))
    open_dataset(data)
    n = len(calls)
    assert n == 2 and (data / HASH_CACHE).is_file()  # train + val shards hashed on the first open
    open_dataset(data)
    assert len(calls) == n  # then a stat each
    shard = data / read_manifest(data)["splits"]["train"]["shards"][0]["file"]
    st = shard.stat()
    raw = bytearray(shard.read_bytes())
    i = raw.find(b"cat")
    raw[i:i + 3] = b"dog"
    shard.write_bytes(bytes(raw))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime tells
    with pytest.raises(DataError, match=r"data-00000-of-00001\.arrow: corrupt shard \(sha256"):
        open_dataset(data)
    with pytest.raises(DataError, match="corrupt shard"):
        verify_shards(data, read_manifest(data), cache=False)


def test_the_raw_source_fingerprint_is_the_content_not_the_mtime(tmp_path, corpus):
    cfg = TrainConfig(data=[str(corpus)], max_chars=150, min_chars=20)
    out = tmp_path / "data"
    assert prepare(cfg.data, out, packing_config(cfg))[1]
    os.utime(corpus)  # touched, unchanged: still up to date
    assert prepare(cfg.data, out, packing_config(cfg))[1] is False
    st = corpus.stat()
    text = corpus.read_text()
    corpus.write_text(text.replace("cat", "dog", 1))
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert corpus.stat().st_size == st.st_size
    with pytest.raises(DataError, match=r"prepared from other sources.*corpus\.txt changed"):
        prepare(cfg.data, out, packing_config(cfg))


def test_one_prepare_per_folder(tmp_path, corpus):
    out = tmp_path / "data"
    lock = PrepareLock(out).acquire()
    try:
        with pytest.raises(DataError, match=r"another `pixar data prepare` \(pid \d+"):
            prepare([str(corpus)], out, packing_config(MICRO.train))
        assert not out.exists()
    finally:
        lock.release()
    (tmp_path / "data.lock").write_text(json.dumps({"pid": dead_pid(), "host": os.uname().nodename}))
    assert prepare([str(corpus)], out, packing_config(MICRO.train))[1]  # a dead holder's lock is taken over
    assert not (tmp_path / "data.lock").exists()


# ---- values ----------------------------------------------------------------------------------------------
def test_train_data_as_a_string_is_one_path_and_bounds_name_the_key():
    assert TrainConfig(data="/some/corpus.txt").data == ["/some/corpus.txt"]
    for kw, key in [({"max_chars": 0}, "train.max_chars"), ({"data": []}, "train.data")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            TrainConfig(**kw)
    for kw, key in [({"lr": float("nan")}, "optim.lr"), ({"lr": 1e300}, "optim.lr"),
                    ({"warmup_steps": -10}, "optim.warmup_steps"), ({"grad_clip": float("inf")}, "optim.grad_clip")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            OptimConfig(**kw)


def test_generate_refuses_negative_lengths_and_bad_temperatures(model):
    r = Renderer(MICRO.render)
    with pytest.raises(ValueError, match="max_new_positions"):
        generate_from_text(model, r, ["hi"], -5)
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            generate_from_text(model, r, ["hi"], 1, temperature=t)


def test_a_config_claiming_huge_dimensions_is_refused_before_the_model_is_built(tmp_path, model, monkeypatch):
    ckpt = save_checkpoint(tmp_path / "ckpt", model, MICRO)
    raw = json.loads((ckpt / "config.json").read_text())
    built = []
    real_init = Pixar.__init__
    monkeypatch.setattr(Pixar, "__init__",
                        lambda self, c, *a, **k: built.append(torch.empty(0).device.type) or real_init(self, c, *a, **k))
    for key, value, message in [("layers", 10_000_000, r"model\.layers must be a finite number in \[1, 1024\]"),
                                ("layers", 1000, r"the weights have 2 layers, the config says model\.layers=1000"),
                                ("hidden", 65536, r"embed\.weight is \[64, 128\], the config says \[65536, 128\]"),
                                ("ffn", 4096, r"weights do not match the config \(6 tensor\(s\); blocks\.0\.mlp")]:
        (ckpt / "config.json").write_text(json.dumps({**raw, "model": {**raw["model"], key: value}}))
        with pytest.raises(CheckpointError, match=message):
            load_model(ckpt)
    assert built == ["meta"]  # only the ffn case got as far as the shape check, on the meta device (no memory)


def test_a_read_only_dataset_keeps_its_digests_in_the_user_cache(tmp_path, corpus, monkeypatch):
    import pixar.data.dataset as dataset

    data = tmp_path / "data"
    prepare([str(corpus)], data, packing_config(MICRO.train))
    monkeypatch.setattr(dataset.os, "access", lambda path, mode: False)
    open_dataset(data)
    assert not (data / HASH_CACHE).exists()
    [cached] = (tmp_path / "cache" / "dataset-sha256").glob("*.json")
    assert len(json.loads(cached.read_text())) == 2
