"""pixar.data.prepare / pixar.data.dataset / `pixar data prepare`: equality with the in-RAM path, byte-identical
parallel output, idempotence, atomic publish, memory-mapped ChunkTable, hf: streaming, bad input."""
from __future__ import annotations

import json
import pickle
import random

import numpy as np
import datasets
import pytest
from helpers import need_data
from click.testing import CliRunner

from harness.app import main
from pixar.config import RenderConfig, TrainConfig
from pixar.data.sources import DataError, build_splits_in_memory, pack_official
from pixar.data.stream import ChunkStream, DataPosition, build_splits, make_loader
from pixar.data.dataset import MANIFEST, ChunkTable, open_dataset
from pixar.data.prepare import packing_config, prepare

WORDS = "the a of and to in was he it his that with had whale lantern orchard silver remembered quietly".split()


def text(seed: int, sentences: int = 60) -> str:
    rng = random.Random(seed)
    sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 60))).capitalize() + "." for _ in range(sentences)]
    return "\n\n".join(" ".join(sents[i: i + 5]) for i in range(0, len(sents), 5))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXAR_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def corpus(tmp_path):
    """Two .txt books and a .jsonl of 40 documents (about 60 kB), in one folder."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.txt").write_text(text(1))
    (folder / "b.txt").write_text(text(2))
    (folder / "c.jsonl").write_text("".join(json.dumps({"text": text(10 + i, 12)}) + "\n" for i in range(40)))
    return folder


def cfg_for(*paths, **kw) -> TrainConfig:
    return TrainConfig(data=[str(p) for p in paths], **{"max_chars": 150, "min_chars": 40, "val_fraction": 0.05, **kw})


def files_of(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("packing", ["pixar", "official"])
def test_prepared_chunks_equal_the_in_memory_splits(corpus, tmp_path, packing):
    cfg = cfg_for(corpus, packing=packing)
    # tiny work units: several parts, the .jsonl cut into byte ranges at newlines
    manifest, built = prepare(cfg.data, tmp_path / "ds", packing_config(cfg), unit_bytes=4000)
    ref, got = build_splits_in_memory(cfg), open_dataset(tmp_path / "ds", packing_config(cfg))
    assert built and isinstance(got.train, ChunkTable)
    assert list(got.train) == ref.train and got.val[:] == ref.val and len(ref.val) > 1
    assert manifest["documents"] == 42 and manifest["chunks"] == len(ref.train) + len(ref.val)
    if packing == "official":
        assert any(len(c) < 40 for c in ref.train)  # no minimum length in the official packing


def test_a_jsonl_cut_into_ranges_decodes_as_one_file(tmp_path):
    """One latin-1 byte in the last range: the whole file is latin-1, as the in-RAM reader decodes it."""
    lines = [json.dumps({"text": f"Na\u00efve caf\u00e9 number {i}. " + text(i, 8)}, ensure_ascii=False)
             for i in range(30)]
    raw = "\n".join(lines[:-1]).encode("utf-8") + b"\n" + lines[-1].encode("latin-1") + b"\n"
    (tmp_path / "mixed.jsonl").write_bytes(raw)
    cfg = cfg_for(tmp_path / "mixed.jsonl")
    for n in (1, 2):
        prepare(cfg.data, tmp_path / f"ds{n}", packing_config(cfg), num_proc=n, unit_bytes=3000)
    ref = build_splits_in_memory(cfg)
    assert any("\u00c3" in c for c in ref.train + ref.val)  # UTF-8 bytes read as latin-1 (mojibake)
    assert files_of(tmp_path / "ds1") == files_of(tmp_path / "ds2")
    assert open_dataset(tmp_path / "ds1") == ref


def test_official_packing_matches_collate_text_rules():
    long = "x" * 12
    assert pack_official(["aa.", "bb.", "cc."], 8) == ["aa. bb.", "cc."]  # 3 + 4 < 8, then 3 + 8 >= 8
    assert pack_official(["aa.", long, "bb."], 10) == ["aa.", long, "bb."]  # an over-long sentence stays whole
    assert pack_official([long], 10) == ["", long]  # as in collate_text: an empty chunk before it
    assert pack_official([], 10) == []


def test_num_proc_gives_byte_identical_datasets(corpus, tmp_path):
    packing = packing_config(cfg_for(corpus))
    prepare([str(corpus)], tmp_path / "one", packing, num_proc=1, unit_bytes=3000)
    prepare([str(corpus)], tmp_path / "two", packing, num_proc=2, unit_bytes=3000)
    one, two = files_of(tmp_path / "one"), files_of(tmp_path / "two")
    assert one == two and "train/data-00000-of-00001.arrow" in one and MANIFEST in one


def test_repeat_is_a_noop_and_a_changed_source_is_detected(corpus, tmp_path):
    packing, out = packing_config(cfg_for(corpus)), tmp_path / "ds"
    prepare([str(corpus)], out, packing)
    stamp = (out / MANIFEST).stat().st_mtime_ns
    assert prepare([str(corpus)], out, packing)[1] is False and (out / MANIFEST).stat().st_mtime_ns == stamp
    (corpus / "b.txt").write_text(text(3))
    with pytest.raises(DataError, match=r"manifest.json: prepared from other sources.*b.txt changed") as e:
        prepare([str(corpus)], out, packing)
    assert "\n" not in str(e.value)
    manifest, built = prepare([str(corpus)], out, packing, force=True)
    assert built and list(open_dataset(out).train) == build_splits_in_memory(cfg_for(corpus)).train


def test_interrupted_prepare_publishes_nothing(corpus, tmp_path, monkeypatch):
    import pixar.data.prepare as prep

    def boom(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(prep, "write_split_shard", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare([str(corpus)], tmp_path / "ds", packing_config(cfg_for(corpus)))
    # no dataset, no temp folder left (cache/ holds the sources' digests, pixar.data.hashing)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["src"]


def test_chunk_table_is_a_cheap_memory_mapped_sequence(corpus, tmp_path):
    cfg = cfg_for(corpus)
    prepare(cfg.data, tmp_path / "ds", packing_config(cfg), unit_bytes=3000)
    table, ref = open_dataset(tmp_path / "ds").train, build_splits_in_memory(cfg).train
    assert len(table) == len(ref) and table[0] == ref[0] and table[-1] == ref[-1] and table[7] == ref[7]
    assert table[3:9] == ref[3:9] and table[::50] == ref[::50] and table == ref and bool(table)
    with pytest.raises(IndexError):
        table[len(ref)]
    blob = pickle.dumps(table)
    assert len(blob) < 2000 < sum(map(len, ref))  # pickled by path, not by content
    assert list(pickle.loads(blob)) == ref
    assert datasets.load_from_disk(str(tmp_path / "ds" / "train"))["text"] == ref  # a standard HF Arrow dataset


def test_build_splits_prepares_into_the_cache_then_opens_datasets(corpus, tmp_path):
    cfg = cfg_for(corpus, data_cache=str(tmp_path / "dc"))
    splits = build_splits(cfg)
    [cached] = list((tmp_path / "dc").iterdir())
    assert cached.name.startswith("src-") and isinstance(splits.train, ChunkTable)
    assert cached.name.endswith(splits.fingerprint) and build_splits_in_memory(cfg).fingerprint is None
    ref = build_splits_in_memory(cfg)
    assert build_splits(cfg) == splits and (splits.train, splits.val) == (ref.train, ref.val)
    assert build_splits(cfg_for(cached)) == splits  # train.data naming the prepared folder itself
    with pytest.raises(DataError, match=r"manifest.json: prepared with max_chars=150 \(the run has 200\)"):
        build_splits(cfg_for(cached, max_chars=200))
    with pytest.raises(DataError, match="one prepared dataset and nothing else"):
        build_splits(cfg_for(cached, corpus))


def test_hf_sources_are_streamed(corpus, tmp_path, monkeypatch):
    real, calls = datasets.load_dataset, []

    def local(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        return real("json", data_files=str(corpus / "c.jsonl"), split=split, streaming=streaming)

    monkeypatch.setattr(datasets, "load_dataset", local)
    cfg = cfg_for("hf:someone/books:en")
    prepare(cfg.data, tmp_path / "ds", packing_config(cfg), unit_bytes=5000)
    assert calls and all(c == ("someone/books", "en", "train", True) for c in calls)
    assert list(open_dataset(tmp_path / "ds").train) == build_splits_in_memory(cfg_for(corpus / "c.jsonl")).train


def test_bad_datasets_name_the_file(corpus, tmp_path):
    packing, out = packing_config(cfg_for(corpus)), tmp_path / "ds"
    prepare([str(corpus)], out, packing)
    shard = out / "train" / "data-00000-of-00001.arrow"
    good = shard.read_bytes()
    shard.write_bytes(good[:100] + b"\xff" * (len(good) - 100))
    with pytest.raises(DataError, match="data-00000-of-00001.arrow: corrupt shard"):
        open_dataset(out).train[0]
    shard.write_bytes(good[:-10])
    with pytest.raises(DataError, match="data-00000-of-00001.arrow: corrupt shard"):
        open_dataset(out)
    shard.unlink()
    with pytest.raises(DataError, match="data-00000-of-00001.arrow: missing shard"):
        open_dataset(out)
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(DataError, match="manifest.json: prepared by an incompatible version"):
        open_dataset(out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("not a dataset")
    with pytest.raises(DataError, match="other: exists and is not a prepared dataset"):
        prepare([str(corpus)], tmp_path / "other", packing)


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"  \n", "empty.txt: empty source file"),
    ("blob.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "blob.txt: binary file"),
    ("late.jsonl", b'{"text": "fine"}\n' * 300 + b"{oops\n", "late.jsonl:301: invalid JSON"),
])
def test_bad_sources_name_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    cfg = cfg_for(tmp_path / name)
    with pytest.raises(DataError, match=message) as e:
        prepare(cfg.data, tmp_path / "ds", packing_config(cfg), unit_bytes=1000)  # late.jsonl: in the 6th range
    assert "\n" not in str(e.value) and not (tmp_path / "ds").exists()


def test_stream_over_a_table_renders_as_over_the_list(corpus, tmp_path):
    from pixar.paths import DataNotFound, find_font

    try:
        find_font("pixeloid")
    except DataNotFound as e:
        need_data(str(e))
    cfg = cfg_for(corpus)
    splits, ref = build_splits(cfg), build_splits_in_memory(cfg)
    rcfg = RenderConfig(max_positions=32)
    kw = dict(seed=3, global_batch=4, start=DataPosition(1, 5), rank=1, world_size=2, grad_accum=2, first_step=2)
    a, b = ChunkStream(splits.train, rcfg, **kw), ChunkStream(ref.train, rcfg, **kw)
    assert a.position_after(7) == b.position_after(7) and a.ids(4, 1) == b.ids(4, 1)
    listed = [x for x, _ in zip(make_loader(b, 0), range(4))]
    mapped = [x for x, _ in zip(make_loader(a, 2), range(4))]  # two workers re-open the table
    for x, y in zip(listed, mapped):
        assert (x["step"], x["accum"]) == (y["step"], y["accum"]) and np.array_equal(x["pixels"], y["pixels"])


def test_cli_prepare_then_up_to_date(corpus, tmp_path):
    runner, out = CliRunner(), tmp_path / "ds"
    args = ["data", "prepare", str(corpus), "--out", str(out), "--max-chars", "150", "--min-chars", "40",
            "--num-proc", "2"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "42 documents ->" in first.output and "2 processes" in first.output
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "up to date" in again.output
    changed = runner.invoke(main, args[:-4] + ["--min-chars", "50"])
    assert changed.exit_code == 1 and changed.output.count("\n") == 1 and "min_chars 40 -> 50" in changed.output


def test_shared_corpus_prepares_to_the_same_chunks(data_dir, tmp_path):
    cfg = TrainConfig(data=["corpus"], data_cache=str(tmp_path / "dc"))
    got, ref = build_splits(cfg, data_dir), build_splits_in_memory(cfg, data_dir)
    assert isinstance(got.val, ChunkTable) and len(got.train) > 5000
    assert list(got.train) == ref.train and list(got.val) == ref.val
