"""pixar.data.sources: reading sources, sentence packing, splits, sharding and the rendered stream."""
from __future__ import annotations

import logging
import random

import numpy as np
import pytest
from helpers import need_data

from pixar.config import RenderConfig, TrainConfig
from pixar.data.sources import DataError, iter_documents, pack_sentences, split_sentences, strip_gutenberg
from pixar.data.stream import ChunkStream, DataPosition, build_splits, epoch_order, make_loader, micro_batch_ids

WORDS = ("the a of and to in was he it his that with had for as at her on by which said but not be "
         "Emma harbour whale Thursday lantern orchard silver remembered quietly").split()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """build_splits prepares raw sources into $PIXAR_CACHE: keep the tests' datasets out of ~/.cache."""
    monkeypatch.setenv("PIXAR_CACHE", str(tmp_path / "cache"))


def make_text(seed: int, sentences: int = 300) -> str:
    """Paragraphs of pseudo-English sentences (seeded), with hard line wraps like a Gutenberg book."""
    rng = random.Random(seed)
    paras = []
    for _ in range(sentences // 6):
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 40))).capitalize() + rng.choice(".!?")
                 for _ in range(6)]
        para = " ".join(sents)
        paras.append("\n".join(para[i: i + 70] for i in range(0, len(para), 70)))
    return "\n\n".join(paras)


def cfg_for(path, **kw) -> TrainConfig:
    return TrainConfig(data=[str(path)], **{"max_chars": 150, "min_chars": 40, "val_fraction": 0.05, **kw})


def test_packing_invariants_and_content():
    sentences = split_sentences(make_text(0))
    chunks = pack_sentences(sentences, max_chars=150, min_chars=40)
    assert chunks and all(40 <= len(c) <= 150 for c in chunks)
    # packing only joins (and cuts over-long sentences at spaces): the words keep their order
    joined = " ".join(chunks).split()
    source = " ".join(sentences).split()
    it = iter(source)
    assert all(w in it for w in joined)  # joined is a subsequence of the source
    assert len(joined) > 0.9 * len(source)
    assert pack_sentences(["x" * 400], 150, 10) == ["x" * 150, "x" * 150, "x" * 100]  # hard cuts
    assert pack_sentences(["x" * 400], 150, 101) == ["x" * 150, "x" * 150]  # leftover of 100 dropped
    assert pack_sentences(["short."], 150, 40) == []


def test_sentence_splitter_and_gutenberg_strip():
    assert split_sentences('Mr. Smith went home. He said "hi." Then?\nYes!\n\nNew  para') == \
        ["Mr. Smith went home.", 'He said "hi."', "Then?", "Yes!", "New para"]
    book = "Title page\n*** START OF THIS PROJECT GUTENBERG EBOOK X\nCONTINUED ***\n\nBody text.\n*** END OF X ***\nlicence"
    assert strip_gutenberg(book).strip() == "Body text."
    assert strip_gutenberg("no markers here") == "no markers here"


def test_splits_deterministic_and_disjoint(tmp_path):
    (tmp_path / "a.txt").write_text(make_text(1))
    (tmp_path / "b.txt").write_text(make_text(2))
    (tmp_path / "LICENSE.txt").write_text("licence boilerplate that must not be trained on " * 20)
    s1, s2 = build_splits(cfg_for(tmp_path)), build_splits(cfg_for(tmp_path))
    assert s1 == s2
    assert not any("boilerplate" in c for c in s1.train + s1.val)
    assert len(s1.val) == round(0.05 * (len(s1.train) + len(s1.val)))
    assert not set(s1.val) & set(s1.train)
    s3 = build_splits(cfg_for(tmp_path, seed=7))
    assert sorted(s3.train + s3.val) == sorted(s1.train + s1.val) and s3.val != s1.val


def test_sharding_partitions_each_step_and_epoch():
    n, batch, world, accum = 48, 8, 2, 2
    seen = []
    for step in range(n // batch):
        parts = [micro_batch_ids(n, 3, 0, batch, step, a, r, world, accum) for a in range(accum) for r in range(world)]
        assert all(len(p) == batch // (world * accum) for p in parts)
        flat = [i for p in parts for i in p]
        assert len(set(flat)) == batch  # disjoint within a step
        seen += flat
    assert sorted(seen) == list(range(n))  # one epoch = every chunk exactly once
    assert list(epoch_order(n, 3, 0)) != list(epoch_order(n, 3, 1))
    # the same global batch, whatever the split over ranks/accumulation
    one = micro_batch_ids(n, 3, 5, batch, 7, 0, 0, 1, 1)
    two = [i for r in range(2) for i in micro_batch_ids(n, 3, 5, batch, 7, 0, r, 2, 1)]
    assert one == two
    pos = DataPosition.from_consumed(101, n)
    assert (pos.epoch, pos.index) == (2, 5) and pos.consumed(n) == 101


def test_latin1_fallback_is_reported(tmp_path, caplog):
    f = tmp_path / "old.txt"
    f.write_bytes("Caf\u00e9 na\u00efve r\u00e9sum\u00e9.".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="pixar.data.sources"):
        [(name, text)] = list(iter_documents([str(f)]))
    assert text == "Caf\u00e9 na\u00efve r\u00e9sum\u00e9."
    assert "old.txt" in caplog.text and "latin-1" in caplog.text


@pytest.mark.parametrize("name, content, message", [
    ("bin.txt", b"PK\x03\x04\x00\x00binary", "binary file"),
    ("ctl.txt", bytes(range(1, 9)) * 50, "binary file"),
    ("empty.txt", b"tiny.", "empty corpus"),
    ("bad.jsonl", b'{"text": "fine"}\n\n{"text": oops}\n', "bad.jsonl:3: invalid JSON"),
    ("nofield.jsonl", b'{"body": "x"}\n', "nofield.jsonl:1: expected an object"),
])
def test_bad_inputs_name_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        build_splits(cfg_for(tmp_path / name))
    assert name in str(e.value) and "\n" not in str(e.value)


def test_missing_and_empty_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXAR_DATA", raising=False)
    with pytest.raises(DataError, match="nowhere.txt: no such file"):
        build_splits(cfg_for(tmp_path / "nowhere.txt"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="no .txt or .jsonl files"):
        build_splits(cfg_for(tmp_path / "folder"))


def test_jsonl_documents(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join(f'{{"text": "{make_text(i, 12)}"}}'.replace("\n", "\\n") for i in range(3)))
    docs = list(iter_documents([str(f)]))
    assert [name.rsplit(":", 1)[1] for name, _ in docs] == ["1", "2", "3"]
    assert build_splits(cfg_for(f)).train


def test_hf_source_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="hf:no-such-user/no-such-set: could not load"):
        list(iter_documents(["hf:no-such-user/no-such-set"]))


def test_relative_paths_resolve_in_the_data_dir(tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "book.txt").write_text(make_text(4))
    monkeypatch.setenv("PIXAR_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path / "corpus")  # `corpus` is not in the cwd: found via $PIXAR_DATA
    assert build_splits(TrainConfig(data=["corpus"], max_chars=150, min_chars=40)).train


def test_stream_renders_the_same_batches_with_workers(tmp_path):
    from pixar.paths import DataNotFound, find_font

    try:
        find_font("pixeloid")
    except DataNotFound as e:
        need_data(str(e))
    chunks = pack_sentences(split_sentences(make_text(5)), 150, 40)
    rcfg = RenderConfig(max_positions=48)
    stream = ChunkStream(chunks, rcfg, seed=1, global_batch=4, start=DataPosition(0, 3), rank=1, world_size=2)
    serial = [b for b, _ in zip(make_loader(stream, 0), range(5))]
    parallel = [b for b, _ in zip(make_loader(stream, 2), range(5))]
    assert [b["step"] for b in serial] == [0, 1, 2, 3, 4]
    for a, b in zip(serial, parallel):
        assert a["step"] == b["step"] and np.array_equal(a["pixels"].numpy(), b["pixels"].numpy())
    assert serial[0]["pixels"].shape == (2, 8, 48 * 16) and serial[0]["mask"].shape == (2, 48)
    assert stream.position_after(2) == DataPosition.from_consumed(3 + 2 * 4, len(chunks))
