"""The renderer's native fast path (pixar.render._strips via pixar.render.native) against its pure-Python path: the
same pixels, EOS positions, masks, flags and counters on many strings, one at a time, batched and into the caller's
buffer; and the recycled memory of render()/render_batch() never overwrites a result the caller still holds."""
import json
import random
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from pixar.config import RenderConfig
from pixar.data.stream import ChunkStream, render_texts
from pixar.paths import data_dir
from pixar.render import native
from pixar.render.column_cache import BatchArrays, StripBlocks
from pixar.render.renderer import Renderer

GOLDEN = Path(__file__).parent / "golden"
needs_native = pytest.mark.skipif(not native.AVAILABLE, reason="pixar.render._strips not built (no C compiler)")


def corpus() -> list:
    """Latin goldens, multi-script goldens, seeded random mixes (tabs, line breaks, runs of spaces, long words,
    texts too long for the strip, pairs) and, with $PIXAR_DATA, the bench's LAMBADA passages."""
    texts = [it["text"] for it in json.loads((GOLDEN / "render_goldens.json").read_text(encoding="utf-8"))]
    texts += [it["text"] for it in json.loads((GOLDEN / "multiscript.json").read_text(encoding="utf-8"))][::7]
    rng = random.Random(21)
    alphabet = (string.ascii_letters + string.digits + string.punctuation + "     \t\n" + "éüßçñ—“”’…"
                + "אב" + "ب")
    for n in range(300):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120 if n % 10 else 1500))))
    texts += ["", " ", "  a  b  ", "x" * 90, "\n", "a\n\nb", ("pair a", "pair b"), ("", "x\ty")]
    d = data_dir()
    lambada = d / "lambada" / "lambada_test.jsonl" if d is not None else None
    if lambada is not None and lambada.exists():
        with open(lambada) as f:
            texts += [json.loads(line)["text"][:300] for _, line in zip(range(300), f)]
    return texts


def same(a, b) -> None:
    for f in ("pixels", "mask", "eos_position", "truncated"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.fallback_chars == b.fallback_chars and a.unknown_chars == b.unknown_chars


@needs_native
@pytest.mark.parametrize("max_positions", [360, 40])
def test_native_and_pure_python_paths_draw_the_same_strips(max_positions):
    texts = corpus()
    cfg = RenderConfig(max_positions=max_positions)
    fast, slow = Renderer(cfg), Renderer(cfg)
    nb = fast.render_batch(texts)
    buf = np.full((len(texts), cfg.patch_size, cfg.width), 7, np.uint8)
    same(fast.render_batch(texts, out=buf), nb)
    singles = [fast.render(t) for t in texts]
    with native.disabled():
        pb = slow.render_batch(texts)
        same(slow.render_batch(texts, out=np.zeros_like(buf)), pb)
        for t, s in zip(texts, singles):
            same(s, slow.render(t))
    same(nb, pb)
    assert fast.chars_laid_out == slow.chars_laid_out  # the same work counted on both paths


def test_forced_fallback_is_the_pure_python_path():
    r = Renderer(RenderConfig(max_positions=40))
    with native.disabled():
        assert native.FILL is None
        b = r.render_batch(["plain words", "tab\there"])
    assert native.FILL is None or native.FILL is native._native_fill  # restored after the block
    assert b.eos_position.tolist() == r.render_batch(["plain words", "tab\there"]).eos_position.tolist()


@pytest.mark.skipif(native.AVAILABLE or shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="built, or no C compiler (the pure-Python path is then used)")
def test_extension_is_built_where_a_compiler_exists():
    pytest.fail("a C compiler is present but pixar.render._strips is not built: run `make setup` "
                "(or `pip install --no-deps -e .`)")


@needs_native
def test_native_fill_checks_its_buffers_and_keeps_errors():
    r = Renderer(RenderConfig(max_positions=40))
    x0, gap, pw, W = r._geometry
    out, eos = np.zeros((2, 8, W), np.uint8), np.zeros(2, np.int64)
    with pytest.raises(ValueError, match="out must hold"):
        native._native_fill(["a", "b"], r._words, None, r._space_bytes(), x0, gap, pw, W, 100, out[:1], eos)

    class Broken(dict):
        def __missing__(self, key):
            raise RuntimeError(f"broken {key}")

    with pytest.raises(RuntimeError, match="broken a"):  # only KeyError means "not this path"
        native._native_fill(["a b"], Broken(), native.new_cache(), r._space_bytes(), x0, gap, pw, W, 100, out[:1],
                            eos[:1])
    todo, chars = native._native_fill(["a b", "c\td", 3, "x" * 101], r._words, r._native_cache, r._space_bytes(),
                                      x0, gap, pw, W, 100,
                                      np.zeros((4, 8, W), np.uint8), np.zeros(4, np.int64))
    assert todo == [1, 2, 3] and chars == 3


def test_batch_arrays_reuse_only_what_the_caller_released():
    r = Renderer(RenderConfig(max_positions=40))
    texts = ["one two", "three"]
    first = r.render_batch(texts).pixels
    kept = first.copy()
    second = r.render_batch(["other words entirely", "x"]).pixels
    assert not np.shares_memory(first, second)
    tensor = torch.from_numpy(second)  # a tensor over the array holds it too
    del second
    third = r.render_batch(texts).pixels
    assert not np.shares_memory(third, tensor.numpy()) and not np.shares_memory(third, first)
    assert np.array_equal(first, kept)
    addr = third.__array_interface__["data"][0]  # the pool keeps the last two: `second` (held by the tensor), `third`
    del third
    fourth = r.render_batch(["different", "texts here"])
    assert fourth.pixels.__array_interface__["data"][0] == addr  # released: written again, not fresh pages
    same(fourth, Renderer(RenderConfig(max_positions=40)).render_batch(["different", "texts here"]))
    assert np.array_equal(first, kept)
    pool = BatchArrays(keep=2, most_bytes=100)
    pool.take((2, 8, 16))
    assert len(pool.arrays) == 0  # over most_bytes: never kept


def test_strip_blocks_reuse_a_block_only_when_all_its_strips_are_gone():
    blocks = StripBlocks(8, 16, block_bytes=3 * 8 * 16, keep_bytes=1 << 20)  # 3 strips per block
    held = [blocks.take()[1] for _ in range(3)]  # block 1, all held
    for p in held:
        p[:] = 9
    dropped = [blocks.take()[1] for _ in range(3)]  # block 2
    second = dropped[0].base.__array_interface__["data"][0]
    del dropped, p
    later = [blocks.take()[1] for _ in range(6)]  # block 2 again (all its strips are gone), then a new block
    for q in later:
        q[:] = 1
    assert all((q == 9).all() for q in held)  # block 1 is held: never written again
    assert later[0].base.__array_interface__["data"][0] == second
    assert later[3].base.__array_interface__["data"][0] != second and len(blocks.blocks) == 3


def test_render_strips_held_by_the_caller_are_never_overwritten():
    r = Renderer(RenderConfig(max_positions=40))
    texts = corpus()[:400]
    held = [r.render(t).pixels for t in texts]
    copies = [p.copy() for p in held]
    for _ in range(3):
        [r.render(t[::-1] if isinstance(t, str) else t) for t in texts]
    assert all(np.array_equal(p, c) for p, c in zip(held, copies))


def test_training_stream_renders_into_reused_buffers():
    chunks = [f"chunk {i} " + "some words of text " * (i % 7) for i in range(40)]
    cfg = RenderConfig(max_positions=40)
    stream = ChunkStream(chunks, cfg, seed=3, global_batch=4)
    fresh = Renderer(cfg)
    it = iter(stream)
    held = next(it)  # kept by the consumer: never written again
    kept = held["pixels"].clone()
    addrs = set()
    for _ in range(6):
        item = next(it)
        texts = [chunks[i] for i in stream.ids(item["step"], item["accum"])]
        assert torch.equal(item["pixels"], torch.from_numpy(fresh.render_batch(texts).pixels))
        addrs.add(item["pixels"].data_ptr())
        del item  # released: its buffer is rendered into again
    assert torch.equal(held["pixels"], kept) and held["pixels"].data_ptr() not in addrs
    if not stream._buffers.pinned:
        assert len(addrs) <= 2
    assert render_texts(fresh, ["a b"])["pixels"].shape == (1, 8, cfg.width)  # without buffers: a fresh batch
