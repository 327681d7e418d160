"""Read generated pixels back to text, and the paper's scoring of what was read (the paper's generation and readability scoring).

Engines (`ENGINES`; `read_strip(s)`, `read_engines`):
    glyph           pixar.read.glyph_decoder.GlyphDecoder: template matching against the renderer's own font
                    (exact on clean renders, ~1 ms a line; needs no external program). It abstains on words
                    whose templates do not fit the pixels: they read as pixar.read.abstention.ABSTAIN_MARK.
    tesseract       Tesseract 5 with the OFFICIAL preprocessing (LatentPixel/text_graph.py `_span` / `ocr`,
                    LatentPixel/ocr.py; notebooks call `img.ocr(method='tesseract', square=False, span=True,
                    span_ratio=1.3, scale=3)`): binarise (white where P(white) > 0.5), centre the crop on a
                    white square of side int(1.3 * max(h, w)), resize x3 bicubic (PIL's default), default
                    page segmentation (psm 3), raw output (only trailing whitespace removed). This is what the
                    paper's "tesseract" column measured (`prepare_paper_tesseract`).
    tesseract-line  Tesseract with this harness's earlier preprocessing (measured best for 8-16 px text in our
                    offline study): trim blank margins, Lanczos x3, 10 px white border, no binarisation, `--psm 7`
                    (one text line), whitespace collapsed (`prepare_for_tesseract`).
    "union" is not a reading engine but a scoring rule: read with several, `union_correct` (the paper's union
    was PaddleOCR or Tesseract; PaddleOCR is not available offline, so ours is glyph or Tesseract).

Tesseract runs as the `tesseract` binary in a subprocess (stdin PNG -> stdout text) with OMP_THREAD_LIMIT=1 in
THAT process's environment only (nothing in os.environ changes), or in-process through `tesserocr` when it is
importable. Both backends see the same preprocessed image.

Strips are [H, W] arrays, 1 = white, 0 = ink (pixar.render.renderer's convention); floats are P(white)
(model probabilities), uint8 0..255 is divided by 255. Pass the generated span (crop first:
`pixar.model.generate.Generation.generated_span`); by default (`stop_at_eos=True`) reading stops at the first
EOS-like block (>= 6 columns in a row each >= 75% ink, which no text produces; `cut_at_eos`); the paper's
protocol reads exactly the generated positions (`stop_at_eos=False`). An all-white strip reads as "".

Scoring (this harness's rule; the official scorers are ported in harness.eval.official_scorers): `first_word` =
leading alphabetic run; `normalise_word` folds g -> q (lower-case only: the font draws g and q alike, G and Q
differ); `score_first_word` = case-sensitive exact match; `union_correct` = any engine correct. Readability
lives in pixar.read.wordlist (re-exported here).
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

from pixar.errors import PixarError
from pixar.read.glyph_decoder import GlyphDecoder, as_white_prob
from pixar.render.renderer import Renderer
from pixar.read.wordlist import Readability, build_wordlist, word_counts  # noqa: F401  (re-exported API)

ENGINES = ("glyph", "tesseract", "tesseract-line")
UNION_ENGINES = ("glyph", "tesseract")  # the paddle-less union: glyph or Tesseract (paper preprocessing)
TESSERACT_INSTALL = "apt-get install tesseract-ocr"
GLYPH_BATCH = 64  # strips per GlyphDecoder.decode_batch call


class OCRError(PixarError, RuntimeError):
    """A read-back engine cannot run (missing program, bad engine name); the message says the fix."""


class TesseractUnavailable(OCRError):
    """The tesseract binary (or pytesseract) is missing."""


# ---- Tesseract -----------------------------------------------------------------------------------
TESSERACT_PREPROCESSING = {"tesseract": "paper", "tesseract-line": "line"}
"""engine name -> TesseractReader(preprocess=...)."""
PAPER_SPAN_RATIO = 1.3  # notebooks: span_ratio=1.3
PAPER_SCALE = 3  # notebooks: scale=3
PAPER_THRESHOLD = 0.5  # text_graph.py BINARY_THRESHOLD; `value > threshold` is white


def _tesseract_cmd() -> str:
    """The binary: pytesseract's `tesseract_cmd` setting when pytesseract is importable, else `tesseract`."""
    try:
        import pytesseract
    except ImportError:
        return "tesseract"
    return pytesseract.pytesseract.tesseract_cmd


def tesseract_available() -> bool:
    """True when Tesseract can run: tesserocr importable, or the binary on PATH."""
    if _tesserocr() is not None:
        return True
    return shutil.which(_tesseract_cmd()) is not None


def _tesserocr():
    try:
        import tesserocr
    except ImportError:
        return None
    return tesserocr


def _tessdata_dir() -> str | None:
    """The folder with eng.traineddata: $TESSDATA_PREFIX, else what `tesseract --list-langs` reports."""
    if os.environ.get("TESSDATA_PREFIX"):
        return os.environ["TESSDATA_PREFIX"]
    exe = shutil.which(_tesseract_cmd())
    if exe is None:
        return None
    out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30)
    m = re.search(r'"([^"]+)"', out.stdout + out.stderr)
    return m.group(1) if m else None


def prepare_paper_tesseract(strip, span_ratio: float = PAPER_SPAN_RATIO, scale: int = PAPER_SCALE,
                            threshold: float = PAPER_THRESHOLD) -> Image.Image | None:
    """The official preprocessing of a crop [h, w] -> binary 'L' image of side int(span_ratio * max(h, w)) * scale.

    text_graph.py `_span`: `sp = int(max(w, h) * span_ratio)`, a white canvas sp x sp, the crop placed at
    rows `sp // 2 - h // 2` and columns `sp // 2 - w // 2`; `_to_PIL`: `value > threshold` (binary
    rendering), 0/255; ocr.py: `img.resize((int(w * scale), int(h * scale)))` with PIL's default filter
    (bicubic for 'L'). None when the crop has no ink (the official code would still call Tesseract, which
    reads nothing there)."""
    if span_ratio <= 1:
        raise ValueError(f"span_ratio must be larger than 1, got {span_ratio}")  # the official assert
    p = as_white_prob(strip)
    white = p > threshold  # [h, w]
    if white.size == 0 or white.all():
        return None
    h, w = white.shape
    sp = int(max(w, h) * span_ratio)
    canvas = np.ones((sp, sp), dtype=bool)
    bh, bw = sp // 2 - h // 2, sp // 2 - w // 2
    canvas[bh: bh + h, bw: bw + w] = white
    img = Image.fromarray(canvas.astype(np.uint8) * 255, mode="L")
    return img.resize((int(sp * scale), int(sp * scale)), Image.BICUBIC)


def prepare_for_tesseract(strip, scale: int = 3, border: int = 10, margin: int = 2) -> Image.Image | None:
    """The "tesseract-line" preprocessing: strip [H, W] -> grey PIL image: blank margins trimmed to `margin`
    px, Lanczos x`scale`, a white `border`. None when the strip has no ink (P(white) < 0.5 nowhere)."""
    p = as_white_prob(strip)
    cols = np.flatnonzero((p < 0.5).any(axis=0))
    if cols.size == 0:
        return None
    p = p[:, max(int(cols[0]) - margin, 0): int(cols[-1]) + 1 + margin]
    img = Image.fromarray(np.round(np.clip(p, 0.0, 1.0) * 255).astype(np.uint8), mode="L")
    img = img.resize((img.width * scale, img.height * scale), Image.LANCZOS)
    return ImageOps.expand(img, border=border, fill=255)


def run_tesseract_cli(img: Image.Image, psm: int | None = None, lang: str = "eng", omp_threads: int = 1,
                      timeout: float = 60.0) -> str:
    """`tesseract stdin stdout -l lang [--psm N]` on img (PNG through a pipe); its raw stdout. OMP_THREAD_LIMIT
    is set in the child's environment only. psm None = Tesseract's default (3), as pytesseract's
    `image_to_string(img)` with no config (the official call)."""
    exe = shutil.which(_tesseract_cmd())
    if exe is None:
        raise TesseractUnavailable(f"the tesseract binary ({_tesseract_cmd()!r}) is not on PATH: "
                                   f"install it with `{TESSERACT_INSTALL}`")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    cmd = [exe, "stdin", "stdout", "-l", lang] + (["--psm", str(int(psm))] if psm is not None else [])
    env = {**os.environ, "OMP_THREAD_LIMIT": str(int(omp_threads))}
    res = subprocess.run(cmd, input=buf.getvalue(), capture_output=True, env=env, timeout=timeout)
    if res.returncode != 0:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OCRError(f"tesseract failed (exit {res.returncode}): {err[-1] if err else 'no message'}")
    return res.stdout.decode("utf-8", "replace")


class TesseractReader:
    """Tesseract with one of the two preprocessings (module docstring). backend: "auto" (tesserocr when
    importable, else the binary), "cli" (the binary; "pytesseract" is accepted as its old name) or
    "tesserocr". preprocess: "paper" (engine "tesseract") or "line" (engine "tesseract-line"); psm None =
    the preprocessing's own (paper: Tesseract's default; line: 7). Raises TesseractUnavailable with the
    install command."""

    def __init__(self, backend: str = "auto", preprocess: str = "paper", scale: int = 3, border: int = 10,
                 psm: int | None = None, workers: int = 1, span_ratio: float = PAPER_SPAN_RATIO):
        if backend == "pytesseract":
            backend = "cli"
        if backend not in ("auto", "cli", "tesserocr"):
            raise OCRError(f"tesseract backend must be auto|cli|tesserocr, got {backend!r}")
        if preprocess not in ("paper", "line"):
            raise OCRError(f"tesseract preprocess must be paper|line, got {preprocess!r}")
        self.preprocess, self.scale, self.border, self.span_ratio = preprocess, scale, border, span_ratio
        self.psm = psm if psm is not None else (None if preprocess == "paper" else 7)
        self.workers = max(1, int(workers))
        if backend == "auto":
            backend = "tesserocr" if _tesserocr() is not None else "cli"
        self.backend = backend
        self._api = None
        if backend == "tesserocr":
            tesserocr = _tesserocr()
            if tesserocr is None:
                raise TesseractUnavailable("tesserocr is not installed: pip install tesserocr==2.13.0 "
                                           f"(and {TESSERACT_INSTALL} for its language data)")
            kwargs = {"lang": "eng"}
            if self.psm is not None:
                kwargs["psm"] = int(self.psm)  # tesserocr.PSM values are plain ints (7 = SINGLE_LINE)
            path = _tessdata_dir()
            if path:
                kwargs["path"] = path
            try:
                self._api = tesserocr.PyTessBaseAPI(**kwargs)
            except RuntimeError as e:
                raise TesseractUnavailable(f"tesserocr could not load English data ({e}): {TESSERACT_INSTALL} "
                                           "or set TESSDATA_PREFIX") from None
        elif shutil.which(_tesseract_cmd()) is None:
            raise TesseractUnavailable(f"the tesseract binary ({_tesseract_cmd()!r}) is not on PATH: "
                                       f"install it with `{TESSERACT_INSTALL}`")

    @property
    def engine(self) -> str:
        """The engine name this reader implements ("tesseract" or "tesseract-line")."""
        return "tesseract" if self.preprocess == "paper" else "tesseract-line"

    def version(self) -> str:
        if self._api is not None:
            return f"tesserocr (libtesseract {self._api.Version()})"
        out = subprocess.run([shutil.which(_tesseract_cmd()), "--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).splitlines()[0].strip()

    def image(self, strip) -> Image.Image | None:
        """The image Tesseract sees for strip (None: nothing to read)."""
        if self.preprocess == "paper":
            return prepare_paper_tesseract(strip, self.span_ratio, self.scale)
        return prepare_for_tesseract(strip, self.scale, self.border)

    def read(self, strip) -> str:
        img = self.image(strip)
        if img is None:
            return ""
        if self._api is not None:
            self._api.SetImage(img)
            text = self._api.GetUTF8Text()
        else:
            text = run_tesseract_cli(img, self.psm)
        if self.preprocess == "paper":
            return text.rstrip()  # the official scorers look at the raw start of the text
        return " ".join(text.split())

    def read_many(self, strips: Sequence) -> list[str]:
        """Results in input order; binary calls run `workers` at a time (separate processes)."""
        if self._api is not None or self.workers == 1 or len(strips) < 2:
            return [self.read(s) for s in strips]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(self.read, strips))


# ---- engine dispatch -----------------------------------------------------------------------------
def _check_engine(engine: str) -> None:
    if engine == "union":
        raise OCRError("'union' is a scoring rule, not a reader: read with read_engines(...) and score "
                       "with union_correct(...)")
    if engine not in ENGINES:
        raise OCRError(f"unknown OCR engine {engine!r}; choose from {', '.join(ENGINES)}")


def cut_at_eos(strip, min_run: int = 6, min_ink: float = 0.75) -> np.ndarray:
    """strip [H, W] -> strip[:, :c], c = the first column of a run of >= `min_run` columns that are each
    >= `min_ink` ink (P(white) < 0.5): an EOS block. Text never has such a run (in Pixeloid at most one
    such column in a row, checked over the whole charset), so nothing else is cut."""
    p = as_white_prob(strip)
    dense = ((p < 0.5).mean(0) >= min_ink).astype(np.int32) if p.shape[1] else np.zeros(0, np.int32)
    if dense.size >= min_run:
        full = np.flatnonzero(np.convolve(dense, np.ones(min_run, np.int32), "valid") == min_run)
        if full.size:
            return np.asarray(strip)[..., : int(full[0])]
    return np.asarray(strip)


def read_strips(strips: Sequence, engine: str = "glyph", renderer: Renderer | None = None, *,
                decoder: GlyphDecoder | None = None, tesseract: TesseractReader | None = None,
                stop_at_eos: bool = True) -> list[str]:
    """Read each strip [H, W_i] with one engine; results in input order. Pass a built `decoder` /
    `tesseract` reader to reuse it across calls (building the glyph templates takes ~0.1 s).
    stop_at_eos: read only up to the first EOS-like block (`cut_at_eos`)."""
    _check_engine(engine)
    strips = [cut_at_eos(s) for s in strips] if stop_at_eos else list(strips)
    if engine == "glyph":
        dec = decoder or GlyphDecoder(renderer)
        out: list[str] = []
        for i in range(0, len(strips), GLYPH_BATCH):
            out.extend(dec.decode_batch(strips[i: i + GLYPH_BATCH]))
        return out
    return tesseract_for(engine, tesseract).read_many(strips)


def tesseract_for(engine: str, reader: TesseractReader | None = None) -> TesseractReader:
    """`reader` when it implements `engine` ("tesseract" / "tesseract-line"), else a new reader for it (same
    backend and workers as `reader` when one is given)."""
    want = TESSERACT_PREPROCESSING[engine]
    if reader is not None and reader.preprocess == want:
        return reader
    if reader is None:
        return TesseractReader(preprocess=want)
    return TesseractReader(backend=reader.backend, preprocess=want, workers=reader.workers)


def read_strip(strip, engine: str = "glyph", renderer: Renderer | None = None, *,
               decoder: GlyphDecoder | None = None, tesseract: TesseractReader | None = None,
               stop_at_eos: bool = True) -> str:
    """Read one strip [H, W] (1 = white) with `engine` (one of ENGINES)."""
    return read_strips([strip], engine, renderer, decoder=decoder, tesseract=tesseract, stop_at_eos=stop_at_eos)[0]


def read_engines(strips: Sequence, engines: Iterable[str] = UNION_ENGINES, renderer: Renderer | None = None, *,
                 decoder: GlyphDecoder | None = None, tesseract: TesseractReader | None = None,
                 stop_at_eos: bool = True) -> dict[str, list[str]]:
    """{engine: [text per strip]} for each engine (e.g. for union scoring)."""
    engines = list(dict.fromkeys(engines))
    for e in engines:
        _check_engine(e)
    strips = [cut_at_eos(s) for s in strips] if stop_at_eos else list(strips)
    return {e: read_strips(strips, e, renderer, decoder=decoder, tesseract=tesseract, stop_at_eos=False)
            for e in engines}


# ---- paper scoring --------------------------------------------------------------------------------
LEADING_STRIP = " \t\r\n\f\v\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb\u2039\u203a"
"""Stripped before the regex: whitespace and quote marks (ASCII and typographic). A continuation often
opens a quotation in LAMBADA-style prose, and Tesseract reads stray marks as quotes; a quote is never the
target word. Pass strip="" to `first_word` for the paper's raw regex on the OCR output."""
_LEADING_ALPHA = re.compile(r"^([a-zA-Z]*)")


def first_word(text: str, strip: str = LEADING_STRIP) -> str:
    """The leading ASCII-alphabetic run (paper: regex ^([a-zA-Z]*)) after stripping `strip` chars."""
    return _LEADING_ALPHA.match(text.lstrip(strip)).group(1)


def normalise_word(word: str, fold_gq: bool = True) -> str:
    """The paper's g -> q fold (lower-case only) when `fold_gq`; surrounding whitespace removed."""
    word = word.strip()
    return word.replace("g", "q") if fold_gq else word


def score_first_word(pred_text: str, gold: str, fold_gq: bool = True, strip: str = LEADING_STRIP) -> bool:
    """Paper accuracy for one sample: first_word(pred) == gold, case-sensitive, after the g/q fold.
    An empty gold word never scores (a data problem, not a correct read)."""
    gold_n = normalise_word(gold, fold_gq)
    return bool(gold_n) and normalise_word(first_word(pred_text, strip), fold_gq) == gold_n


def union_correct(preds_by_engine: Mapping[str, str], gold: str, fold_gq: bool = True,
                  strip: str = LEADING_STRIP) -> bool:
    """The paper's reported score: correct if any engine's reading is correct."""
    return any(score_first_word(p, gold, fold_gq, strip) for p in preds_by_engine.values())
