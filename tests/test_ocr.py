"""Read-back: glyph decoder, Tesseract wrapper, paper scoring, readability word list."""
from __future__ import annotations

import difflib
import os

import numpy as np
import pytest
from helpers import need_data

from pixar.read import ocr

from pixar.read import wordlist
from pixar.read.glyph_decoder import GlyphDecoder
from pixar.paths import DataNotFound
from pixar.render.renderer import Renderer
from pixar.read.wordlist import Readability, build_wordlist, corpus_lines, word_counts

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    'She said, "It\'s 4:30 -- meet me at Gate 12!" (Really?)',
    "Mary moved to the bathroom. Where is Mary? | bathroom",
    "In 1851, Herman Melville wrote MOBY-DICK; or, The Whale [sic].",
    "A quiet queen questioned 7 guards; 3% agreed & 2/3 argued.",
]


@pytest.fixture(scope="module")
def renderer():
    try:
        return Renderer()
    except DataNotFound as e:
        need_data(f"no font: {e}")


@pytest.fixture(scope="module")
def decoder(renderer):
    return GlyphDecoder(renderer)


def text_strip(renderer: Renderer, text: str) -> np.ndarray:
    """The text region of a rendered strip (everything before the EOS block): uint8 [8, W]."""
    b = renderer.render(text)
    return b.pixels[0][:, : int(b.eos_position[0]) * renderer.cfg.position_width]


def fold(s: str) -> str:
    return s.replace("g", "q")


def word_accuracy(golds, preds, fold_gq=True):
    ok = total = 0
    for g, p in zip(golds, preds):
        gw, pw = g.split(), p.split()
        if fold_gq:
            gw, pw = [fold(w) for w in gw], [fold(w) for w in pw]
        sm = difflib.SequenceMatcher(a=gw, b=pw, autojunk=False)
        ok += sum(m.size for m in sm.get_matching_blocks())
        total += len(gw)
    return ok / total


# ---- glyph decoder --------------------------------------------------------------------------------
def test_glyph_round_trip_exact(renderer, decoder):
    strips = [text_strip(renderer, s) for s in SENTENCES]
    out = decoder.decode_batch(strips)
    assert [fold(o) for o in out] == [fold(s) for s in SENTENCES]  # exact up to the paper's g/q fold
    assert out[:4] == SENTENCES[:4]  # the q-before-u rule gets these right unfolded too ...
    assert out[4] == "A quiet queen questioned 7 quards; 3% agreed & 2/3 arqued."  # ... but not 'gu'
    assert [decoder.decode(s) for s in strips] == out  # Python DP (single) == numpy DP (batch)
    lexicon = {"guards": 5, "argued": 3, "queen": 9, "questioned": 2}
    assert GlyphDecoder(renderer, lexicon=lexicon).decode(strips[4]) == SENTENCES[4]


def test_glyph_batch_paths_agree(renderer, decoder):
    strips = [text_strip(renderer, s) for s in SENTENCES * 2]  # >= 8: the numpy DP
    assert decoder.decode_batch(strips) == decoder.decode_batch(strips[:5]) * 2


def test_glyph_input_forms(renderer, decoder):
    strip = text_strip(renderer, "Hello world")
    assert decoder.decode(strip.astype(bool)) == "Hello world"
    assert decoder.decode(strip.astype(np.uint8) * 255) == "Hello world"  # 0..255 image
    probs = np.where(strip == 1, 0.9, 0.15).astype(np.float32)  # confident but soft P(white)
    assert decoder.decode(probs) == "Hello world"
    padded = np.concatenate([np.ones((8, 30), np.uint8), strip, np.ones((8, 40), np.uint8)], axis=1)
    assert decoder.decode(padded) == "Hello world"  # blank margins are free and stripped
    assert decoder.decode(np.ones((8, 50))) == ""
    assert decoder.decode(np.ones((8, 0))) == ""
    assert decoder.decode_batch([]) == []


def test_glyph_bad_input(decoder):
    with pytest.raises(ValueError, match="height 7"):
        decoder.decode(np.ones((7, 20)))
    with pytest.raises(ValueError, match="2-D"):
        decoder.decode(np.ones(20))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        decoder.decode(np.full((8, 20), 2.0))
    with pytest.raises(ValueError, match="gq"):
        GlyphDecoder(decoder.renderer, gq="x")


def test_glyph_gq_choice(renderer, decoder):
    strip = text_strip(renderer, "quiet gag")
    assert decoder.decode(strip) == "quiet gag"
    assert GlyphDecoder(renderer, gq="q").decode(strip) == "quiet qaq"
    assert GlyphDecoder(renderer, gq="g").decode(strip) == "guiet gag"
    lex = GlyphDecoder(renderer, lexicon={"guess": 10, "quess": 0, "gag": 3})
    assert lex.decode(text_strip(renderer, "I guess gag")) == "I guess gag"  # lexicon beats the rule
    assert decoder.decode(text_strip(renderer, "I guess")) == "I quess"  # the rule alone


def test_glyph_robust_to_pixel_flips(renderer, decoder):
    strips = [text_strip(renderer, s) for s in SENTENCES]
    rng = np.random.default_rng(0)
    noisy = [np.where(rng.random(s.shape) < 0.02, 1 - s, s) for s in strips]
    out = decoder.decode_batch_with_residual(noisy)
    assert word_accuracy(SENTENCES, [t for t, _ in out]) >= 0.8
    assert 0.005 < np.mean([r for _, r in out]) < 0.05  # the residual estimates the 2% flip rate


def test_glyph_corpus_lines(renderer, decoder):
    try:
        lines = corpus_lines(n=120, seed=11)
    except DataNotFound:
        need_data("PIXAR_DATA not set")
    b = renderer.render_batch(lines)
    strips = [b.pixels[i][:, : int(b.eos_position[i]) * 16] for i in range(len(lines))]
    preds = decoder.decode_batch(strips)
    assert word_accuracy(lines, preds) >= 0.99
    assert word_accuracy(lines, preds, fold_gq=False) >= 0.98


# ---- engines --------------------------------------------------------------------------------------
def test_read_api(renderer, decoder):
    strips = [text_strip(renderer, s) for s in SENTENCES[:2]]
    assert ocr.read_strip(strips[0], "glyph", renderer) == SENTENCES[0]
    assert ocr.read_strips(strips, decoder=decoder) == SENTENCES[:2]
    res = ocr.read_engines(strips, engines=("glyph",), decoder=decoder)
    assert res == {"glyph": SENTENCES[:2]}
    with pytest.raises(ocr.OCRError, match="scoring rule"):
        ocr.read_strip(strips[0], "union", renderer)
    with pytest.raises(ocr.OCRError, match="unknown OCR engine 'paddle'"):
        ocr.read_engines(strips, engines=("glyph", "paddle"), decoder=decoder)


def test_reading_stops_at_eos(renderer, decoder):
    b = renderer.render("Hi there")
    full = b.pixels[0][:, : (int(b.eos_position[0]) + 2) * 16]  # text, EOS block, white
    assert ocr.cut_at_eos(full).shape[1] == int(b.eos_position[0]) * 16
    garbage = full.copy()
    garbage[:, -16:] = text_strip(renderer, "xyz")[:, :16]  # ink after the EOS block is ignored
    assert ocr.read_strip(garbage, decoder=decoder) == "Hi there"
    assert ocr.read_engines([full], ("glyph",), decoder=decoder) == {"glyph": ["Hi there"]}
    assert ocr.read_strip(full, decoder=decoder, stop_at_eos=False) != "Hi there"
    noisy_eos = full.copy()
    noisy_eos[3, -30] = 1  # a white speck inside the block does not hide it
    assert ocr.cut_at_eos(noisy_eos).shape[1] == int(b.eos_position[0]) * 16
    assert ocr.cut_at_eos(np.ones((8, 0))).shape == (8, 0)


def test_prepare_for_tesseract(renderer):
    strip = text_strip(renderer, "Hi")
    padded = np.concatenate([strip, np.ones((8, 50), np.uint8)], axis=1)
    img = ocr.prepare_for_tesseract(padded, scale=3, border=10)
    cols = np.flatnonzero((strip == 0).any(0))
    width = min(int(cols[-1]) + 3, strip.shape[1] + 50) - max(int(cols[0]) - 2, 0)
    assert img.size == (width * 3 + 20, 8 * 3 + 20) and img.mode == "L"
    arr = np.asarray(img)
    assert arr[:10].min() == 255 and arr[:, :10].min() == 255 and arr.min() < 128  # white border, ink inside
    assert ocr.prepare_for_tesseract(np.ones((8, 30))) is None


needs_tesseract = pytest.mark.requires_tesseract  # conftest: skipped without tesseract, a failure under PIXAR_REQUIRE_DATA=1


@needs_tesseract
def test_tesseract_reads_rendered_words(renderer):
    assert ocr.read_strip(text_strip(renderer, "Hello world"), "tesseract") == "Hello world"
    res = ocr.read_engines([text_strip(renderer, "Hello world"), np.ones((8, 20))], renderer=renderer)
    assert res["glyph"] == ["Hello world", ""] and res["tesseract"][1] == ""
    assert ocr.union_correct({e: t[0] for e, t in res.items()}, "Hello")


def _fake_tesseract(monkeypatch, reply: bytes = b" Hello\n world \x0c"):
    """Replace the binary call: record each command, the child's environment and the PNG it was given."""
    import io as _io
    import subprocess

    from PIL import Image

    calls = []

    def fake_run(cmd, input, capture_output, env, timeout):
        calls.append({"cmd": cmd, "env": env, "size": Image.open(_io.BytesIO(input)).size})
        return subprocess.CompletedProcess(cmd, 0, stdout=reply, stderr=b"")

    monkeypatch.setattr(ocr.shutil, "which", lambda name: "/usr/bin/tesseract")
    monkeypatch.setattr(ocr, "_tesserocr", lambda: None)
    monkeypatch.setattr(ocr.subprocess, "run", fake_run)
    return calls


def test_tesseract_call_env_is_the_childs_only(renderer, monkeypatch):
    calls = _fake_tesseract(monkeypatch)
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    line = ocr.TesseractReader(backend="cli", preprocess="line")
    assert line.read(text_strip(renderer, "Hello world")) == "Hello world"  # whitespace collapsed
    assert calls[-1]["cmd"][1:] == ["stdin", "stdout", "-l", "eng", "--psm", "7"] and calls[-1]["size"][1] == 44
    assert calls[-1]["env"]["OMP_THREAD_LIMIT"] == "1"
    assert "OMP_THREAD_LIMIT" not in os.environ  # never set in this process
    paper = ocr.TesseractReader(backend="pytesseract")  # old backend name still accepted
    assert paper.backend == "cli" and paper.preprocess == "paper" and paper.engine == "tesseract"
    assert paper.read(text_strip(renderer, "Hello world")) == " Hello\n world"  # raw start kept for the paper's regex
    assert calls[-1]["cmd"][1:] == ["stdin", "stdout", "-l", "eng"]  # default psm, as image_to_string(img)
    assert calls[-1]["size"] == (249, 249)  # 8 x 64 crop -> int(1.3 * 64) = 83 square, x3
    assert "OMP_THREAD_LIMIT" not in os.environ
    many = ocr.TesseractReader(backend="cli", workers=2).read_many([text_strip(renderer, "Hi")] * 3)
    assert many == [" Hello\n world"] * 3 and all(c["env"]["OMP_THREAD_LIMIT"] == "1" for c in calls)


def test_tesseract_failure_is_one_clear_line(renderer, monkeypatch):
    import subprocess

    _fake_tesseract(monkeypatch)
    monkeypatch.setattr(ocr.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, stdout=b"", stderr=b"Warning\nError opening data file eng.traineddata\n"))
    with pytest.raises(ocr.OCRError, match="exit 1.*eng.traineddata"):
        ocr.TesseractReader(backend="cli").read(text_strip(renderer, "Hi"))


def test_paper_tesseract_preprocessing_geometry():
    # a 4-position LAMBADA crop (8 x 64): sp = int(64 * 1.3) = 83, rows 41 - 4 = 37.., columns 41 - 32 = 9..
    crop = np.ones((8, 64), np.float32)
    crop[2:6, 10:20] = 0.2  # ink (P(white) <= 0.5)
    crop[0, 0] = 0.5  # exactly 0.5 is NOT white: the official test is value > 0.5
    crop[7, 63] = 0.51  # just white
    img = ocr.prepare_paper_tesseract(crop, scale=1)
    arr = np.asarray(img)
    assert img.mode == "L" and img.size == (83, 83) and set(np.unique(arr)) == {0, 255}
    expect = np.full((83, 83), 255, np.uint8)
    expect[37 + 2: 37 + 6, 9 + 10: 9 + 20] = 0
    expect[37, 9] = 0
    assert (arr == expect).all()
    big = ocr.prepare_paper_tesseract(crop)  # x3, bicubic
    assert big.size == (249, 249)
    ref = img.resize((249, 249), ocr.Image.BICUBIC)
    assert (np.asarray(big) == np.asarray(ref)).all()
    # a 5-position bAbI crop: int(80 * 1.3) = 104 -> 312; a blank crop is not sent to Tesseract
    assert ocr.prepare_paper_tesseract(np.zeros((8, 80))).size == (312, 312)
    assert ocr.prepare_paper_tesseract(np.ones((8, 80))) is None
    with pytest.raises(ValueError, match="span_ratio"):
        ocr.prepare_paper_tesseract(crop, span_ratio=1.0)


def test_engine_registry_makes_the_preprocessing_explicit(monkeypatch):
    _fake_tesseract(monkeypatch)
    assert ocr.ENGINES == ("glyph", "tesseract", "tesseract-line") and ocr.UNION_ENGINES == ("glyph", "tesseract")
    assert ocr.TESSERACT_PREPROCESSING == {"tesseract": "paper", "tesseract-line": "line"}
    paper = ocr.TesseractReader()
    assert ocr.tesseract_for("tesseract", paper) is paper
    line = ocr.tesseract_for("tesseract-line", paper)
    assert line.preprocess == "line" and line.psm == 7 and line.engine == "tesseract-line"
    with pytest.raises(ocr.OCRError, match="preprocess must be paper\\|line"):
        ocr.TesseractReader(preprocess="lanczos")


@needs_tesseract
def test_paper_tesseract_reads_rendered_words(renderer):
    strips = [text_strip(renderer, w) for w in ("kitchen", "bathroom")]
    assert ocr.read_strips(strips, "tesseract", stop_at_eos=False) == ["kitchen", "bathroom"]
    assert ocr.read_strips(strips, "tesseract-line") == ["kitchen", "bathroom"]


def test_missing_tesseract_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    monkeypatch.setattr(ocr, "_tesserocr", lambda: None)
    assert not ocr.tesseract_available()
    with pytest.raises(ocr.TesseractUnavailable, match="apt-get install tesseract-ocr"):
        ocr.read_strip(np.zeros((8, 10)), "tesseract")
    with pytest.raises(ocr.TesseractUnavailable, match="apt-get install tesseract-ocr"):
        ocr.read_strip(np.zeros((8, 10)), "tesseract-line")
    with pytest.raises(ocr.TesseractUnavailable, match="tesserocr is not installed"):
        ocr.TesseractReader(backend="tesserocr")


# ---- paper scoring --------------------------------------------------------------------------------
@pytest.mark.parametrize("text, word", [
    ("Hello world", "Hello"), ("  dog.", "dog"), ('"Yes," he said', "Yes"), ("\u201cWell\u201d", "Well"),
    ("'tis", "tis"), ("123 go", ""), ("", ""), ("caf\u00e9", "caf"), ("|bathroom", ""), ("x-ray", "x"),
])
def test_first_word(text, word):
    assert ocr.first_word(text) == word


def test_first_word_paper_raw_regex():
    assert ocr.first_word('"Yes," he said', strip="") == ""
    assert ocr.first_word("Yes", strip="") == "Yes"


def test_normalise_and_score():
    assert ocr.normalise_word(" going ") == "qoinq"
    assert ocr.normalise_word("Going", fold_gq=False) == "Going"
    assert ocr.normalise_word("GQ") == "GQ"  # capitals differ in the font: no fold
    assert ocr.score_first_word("qoing home", "going")  # g/q fold
    assert not ocr.score_first_word("qoing home", "going", fold_gq=False)
    assert not ocr.score_first_word("Going", "going")  # case-sensitive
    assert ocr.score_first_word(' "kitchen." ', "kitchen")
    assert not ocr.score_first_word("kitchenette", "kitchen")
    assert not ocr.score_first_word("", "")  # an empty gold never scores
    assert ocr.union_correct({"glyph": "garden", "tesseract": "qarden!"}, "garden")
    assert ocr.union_correct({"glyph": "gardon", "tesseract": "qarden!"}, "garden")
    assert not ocr.union_correct({"glyph": "gardon", "tesseract": "Garden"}, "garden")
    assert not ocr.union_correct({}, "garden")


# ---- readability / word list -------------------------------------------------------------------
def test_readability():
    r = Readability(["Hello", "world", "bathroom"])
    assert r.is_readable("hello there") and r.is_readable("  WORLD")
    assert not r.is_readable("hello, there")  # punctuation kept, as in the paper
    assert not r.is_readable("") and not r.is_readable("xqzt")
    assert r.is_readable_any(["xq", "bathroom."]) is False
    assert r.is_readable_any(["xq", "bathroom"]) is True
    assert r.rate(["hello", "xq", "world", "zz"]) == 0.5 and r.rate([]) == 0.0
    with pytest.raises(ValueError):
        Readability([])


def test_build_wordlist_and_cache(tmp_path, monkeypatch):
    corpus = tmp_path / "data" / "corpus" / "books"
    corpus.mkdir(parents=True)
    (corpus / "a.txt").write_text("The whale, the WHALE! The sea; a ship.\n", encoding="utf-8")
    (corpus / "b.txt").write_bytes("caf\xe9 caf\xe9 sea ship 42\n".encode("latin-1"))  # not UTF-8
    (corpus / "LICENSE.txt").write_text("license license license", encoding="utf-8")
    cache = tmp_path / "cache"
    words = build_wordlist(tmp_path / "data", extra_texts=["Mary went to the hallway."], cache=cache,
                           vocabulary="corpus")
    assert words == {"the", "whale", "sea", "ship", "caf\u00e9", "mary", "went", "to", "hallway"}
    assert build_wordlist(tmp_path / "data", min_count=3, cache=cache, vocabulary="corpus") == {"the"}
    assert word_counts(tmp_path / "data", cache=cache)["whale"] == 2
    files = sorted(p.name for p in cache.iterdir())
    assert any(f.startswith("wordcounts-") for f in files) and sum(f.startswith("wordlist-") for f in files) == 2
    assert not any(f.endswith(".tmp") for f in files)
    # a second call is served from the cache (tokenising would fail now)
    monkeypatch.setattr("pixar.read.wordlist._words", lambda text: (_ for _ in ()).throw(AssertionError("rebuilt")))
    assert build_wordlist(tmp_path / "data", min_count=3, cache=cache, vocabulary="corpus") == {"the"}
    # a changed corpus gets a new key
    (corpus / "a.txt").write_text("ship ship\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="rebuilt"):
        build_wordlist(tmp_path / "data", cache=cache, vocabulary="corpus")


def test_build_wordlist_errors(tmp_path):
    with pytest.raises(DataNotFound, match="no corpus"):
        build_wordlist(tmp_path, cache=tmp_path / "c", vocabulary="corpus")
    with pytest.raises(ValueError, match="min_count"):
        build_wordlist(tmp_path, min_count=0, cache=tmp_path / "c", vocabulary="corpus")
    with pytest.raises(DataNotFound, match="unigram_freq.csv"):
        build_wordlist(tmp_path)  # the default is the paper's list
    with pytest.raises(ValueError, match="unknown vocabulary 'big'"):
        build_wordlist(tmp_path, vocabulary="big")
    bad = tmp_path / "wordfreq" / "unigram_freq.csv"
    bad.parent.mkdir()
    bad.write_text("word,count\nthe,10\nbroken\n")
    with pytest.raises(ValueError, match=r"unigram_freq.csv:3"):
        build_wordlist(tmp_path)


def test_paper_vocabulary_small(tmp_path):
    (tmp_path / "wordfreq").mkdir()
    (tmp_path / "wordfreq" / "unigram_freq.csv").write_text("word,count\nthe,9\nnull,5\nnan,4\nkitchen,3\n")
    assert wordlist.unigram_words(tmp_path) == ["the", "null", "nan", "kitchen"]
    words = build_wordlist(tmp_path, extra_texts=["Tabitha's caf\u00e9, don't!"])
    assert words == {"the", "null", "nan", "kitchen", "tabitha", "s", "caf", "don", "t"}  # ASCII runs
    official = build_wordlist(tmp_path, vocabulary="paper-official")
    assert official == {"the", "nan", "kitchen"}  # pandas read "null" as NaN -> "nan"


def test_paper_vocabulary_real(data_dir):
    words = build_wordlist(data_dir)
    assert len(words) == wordlist.UNIGRAM_SIZE == 333_333 and {"null", "kitchen", "the"} <= words
    official = build_wordlist(data_dir, vocabulary="paper-official")
    assert len(official) == 333_332 and "null" not in official  # the count both notebooks print
    assert "hallway" in words and Readability(words).is_readable("Hallway.") is False
    assert len(build_wordlist(data_dir, extra_texts=["zyzzyvaq qqxq"])) == 333_335


def test_wordlist_real_corpus(tmp_path_factory):
    try:
        words = build_wordlist(extra_texts=["zyzzyva"], cache=tmp_path_factory.mktemp("pixar-cache"),
                               vocabulary="corpus")
    except DataNotFound:
        need_data("PIXAR_DATA not set")
    assert {"the", "whale", "kitchen", "garden", "zyzzyva"} <= words and len(words) > 20000
    assert "hallway" not in words  # not in the books: the dataset words (extra_texts) matter
    assert Readability(words).is_readable("Mary went")
