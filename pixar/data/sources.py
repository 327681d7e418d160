"""Pretraining sources -> documents -> packed chunks -> train/validation splits (the paper's pretraining data).

    sources (.txt files/folders, .jsonl with "text", hf:<name>[:<config>])
      -> documents (Gutenberg header/footer stripped, whitespace normalised)
      -> sentences (regex splitter) -> greedy packing into chunks of min_chars..max_chars characters
         (one document never spills into another chunk's document; short leftovers dropped)
      -> deterministic validation split (seed)

build_splits_in_memory is this pipeline on Python lists (the tests' reference); pixar.data.prepare runs it in
parallel into a memory-mapped dataset (pixar.data.dataset), and pixar.data.stream serves it to training.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pixar.config import TrainConfig
from pixar.errors import PixarError
from pixar.paths import DataNotFound, resolve_data_path

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".jsonl")
SKIPPED_PREFIXES = ("license", "readme", "copying")
"""Files in a folder whose names start with these (any case) are licence/readme boilerplate, not text."""


class DataError(PixarError, ValueError):
    """Bad pretraining input (binary or malformed file, empty corpus); the message names the file."""


# ---- reading sources -----------------------------------------------------------------------
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
"""Control characters (Unicode Cc) other than tab/newline/CR/VT/FF: a sign of a binary file."""


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 (BOM allowed), else latin-1 with a logged warning; NUL bytes or many control chars = binary."""
    return decode_bytes(raw, name)[0]


def decode_bytes(raw: bytes, name: str, latin1: bool = False, bom: bool = True) -> tuple[str, bool]:
    """decode_text -> (text, decoded as latin-1?); `latin1` skips the UTF-8 attempt, `bom=False` keeps a
    leading U+FEFF (a byte range from the middle of a file)."""
    if b"\x00" in raw:
        raise DataError(f"{name}: binary file (contains NUL bytes), expected UTF-8 or latin-1 text")
    fell_back = latin1
    if not latin1:
        try:
            text = raw.decode("utf-8-sig" if bom else "utf-8")
        except UnicodeDecodeError as e:
            log.warning("%s: not valid UTF-8 (%s); decoded as latin-1", name, e.reason)
            fell_back = True
    if fell_back:
        text = raw.decode("latin-1")
    controls = len(_CONTROL.findall(text))
    if text and controls > 0.01 * len(text):
        raise DataError(f"{name}: binary file ({controls} control characters in {len(text)}), expected text")
    return text, fell_back


_PG_START = re.compile(r"^\*\*\* ?START OF[^\n]*(?:\n[^\n]+)*", re.M)
_PG_END = re.compile(r"^\*\*\* ?END OF", re.M)


def strip_gutenberg(text: str) -> str:
    """Keep only the body between Project Gutenberg's `*** START OF` and `*** END OF` lines, if present."""
    m = _PG_START.search(text)
    if m:
        text = text[m.end():]
    m = _PG_END.search(text)
    if m:
        text = text[: m.start()]
    return text


def jsonl_texts(path: str | os.PathLike, raw: str, first_line: int = 1) -> Iterator[str]:
    """The "text" field of every non-blank line of decoded .jsonl content `raw` (line numbers in errors
    count from `first_line`). (JSONL records of any shape, .gz fallback: harness.results.schema.read_jsonl.)"""
    for lineno, line in enumerate(raw.splitlines(), first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataError(f"{path}:{lineno}: expected an object with a string field 'text'")
        yield record["text"]


def source_files(folder: Path) -> list[Path]:
    """The text files of a source folder, sorted (licence/readme files left out)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                   and not p.name.lower().startswith(SKIPPED_PREFIXES))
    if not files:
        raise DataError(f"{folder}: no .txt or .jsonl files in this folder")
    return files


def hf_documents(spec: str) -> Iterator[str]:
    """The non-empty "text" values of hf:<name>[:<config>]'s train split, streamed (never a whole column)."""
    name, _, config = spec[3:].partition(":")
    try:
        import datasets  # lazy: slow import, and only online users need it
    except ImportError as e:
        raise DataError(f"{spec}: the `datasets` package is needed for hf: sources ({e})") from None
    try:
        ds = datasets.load_dataset(name, config or None, split="train", streaming=True)
        rows = iter(ds)
        first = next(rows, None)
    except Exception as e:  # offline, unknown name, ... (datasets raises many types)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{spec}: could not load the HF dataset ({msg}); offline? use local .txt/.jsonl files") from None
    if first is None:
        raise DataError(f"{spec}: the dataset's train split is empty")
    if not isinstance(first.get("text"), str):
        raise DataError(f"{spec}: the dataset has no string 'text' column (columns: {sorted(first)})")
    for row in itertools.chain([first], rows):
        if row["text"]:
            yield row["text"]


def iter_documents(sources: list[str], data_dir: str | os.PathLike | None = None) -> Iterator[tuple[str, str]]:
    """Yield (source name, document text) for every document of every source, in a fixed order."""
    for spec in sources:
        if spec.startswith("hf:"):
            for i, text in enumerate(hf_documents(spec)):
                yield f"{spec}#{i}", text
            continue
        try:
            path = resolve_data_path(spec, data_dir)
        except DataNotFound as e:
            raise DataError(str(e)) from None
        for f in source_files(path) if path.is_dir() else [path]:
            try:
                raw = f.read_bytes()
            except OSError as e:
                raise DataError(f"{f}: cannot read ({e.strerror})") from None
            text = decode_text(raw, str(f))
            if f.suffix.lower() == ".jsonl":
                for i, doc in enumerate(jsonl_texts(f, text)):
                    yield f"{f}:{i + 1}", doc
            else:
                yield str(f), strip_gutenberg(text)


# ---- sentences and packing -----------------------------------------------------------------
_SENT_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+")
_ABBREV = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|St|Prof|Rev|Col|Gen|Capt|Lt|Sr|Jr|vs|etc|i\.e|e\.g|No)\.$")


def split_sentences(text: str) -> list[str]:
    """Paragraphs (blank-line separated; hard line wraps joined) -> sentences, whitespace collapsed."""
    sentences = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        pending = ""
        for piece in _SENT_END.split(para):
            pending = f"{pending} {piece}" if pending else piece
            if not _ABBREV.search(pending):
                sentences.append(pending)
                pending = ""
        if pending:
            sentences.append(pending)
    return sentences


def _cut_long(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than max_chars -> pieces of <= max_chars, cut at spaces where possible."""
    pieces = []
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars + 1)
        cut = cut if cut > 0 else max_chars
        pieces.append(sentence[:cut].rstrip())
        sentence = sentence[cut:].lstrip()
    return pieces + ([sentence] if sentence else [])


def pack_sentences(sentences: list[str], max_chars: int, min_chars: int) -> list[str]:
    """Greedy packing of consecutive sentences (joined by a space) into chunks of <= max_chars;
    chunks shorter than min_chars (the leftovers) are dropped."""
    chunks, current = [], ""
    for sentence in sentences:
        for piece in _cut_long(sentence, max_chars):
            if current and len(current) + 1 + len(piece) <= max_chars:
                current = f"{current} {piece}"
            else:
                if current:
                    chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return [c for c in chunks if len(c) >= min_chars]


def pack_official(sentences: list[str], max_chars: int) -> list[str]:
    """The official packing (april-tools/pixar LatentPixel/dataprocess/preprocess.py::collate_text, one
    document), line for line: a sentence joins the chunk while len(sentence) + length < max_chars (length
    counts one space per sentence); a sentence of >= max_chars is kept whole as its own chunk; no minimum
    length (collate_text never reads min_len), and, as there, a chunk may be empty when a long sentence
    arrives with nothing pending."""
    samples, sents, length, idx = [], [], 0, 0
    while idx < len(sentences):
        sent = sentences[idx]
        if len(sent) + length < max_chars:
            length += len(sent) + 1
            sents.append(sent.strip())
            idx += 1
        elif len(sent) >= max_chars:
            samples.append(" ".join(sents))
            samples.append(sent)
            idx += 1
            length, sents = 0, []
        else:
            samples.append(" ".join(sents))
            length, sents = 0, []
    if sents:
        samples.append(" ".join(sents))
    return samples


PACKINGS = ("pixar", "official")


def pack_document(text: str, max_chars: int, min_chars: int, packing: str = "pixar") -> list[str]:
    """One document -> its chunks, with our packing (default) or the official collate_text."""
    if packing == "official":
        return pack_official(split_sentences(text), max_chars)
    return pack_sentences(split_sentences(text), max_chars, min_chars)


@dataclass
class Splits:
    """Training and validation chunks: lists (in RAM) or pixar.data.dataset.ChunkTable (memory-mapped)."""

    train: list[str]
    val: list[str]
    fingerprint: str | None = field(default=None, compare=False)
    """The prepared dataset's fingerprint (manifest.json), None for in-RAM splits: store it with checkpoints."""


def split_indices(num_chunks: int, seed: int, val_fraction: float, what: str) -> np.ndarray:
    """The validation chunk ids, in the order the split lists them: round(val_fraction * N) (at least 1
    when val_fraction > 0) ids of a permutation seeded with `seed`. int64 [n_val]."""
    n_val = max(1, round(num_chunks * val_fraction)) if val_fraction > 0 else 0
    if n_val >= num_chunks:
        raise DataError(f"{what}: only {num_chunks} chunk(s), too few for a validation split")
    return np.random.default_rng([seed, 0x5A11]).permutation(num_chunks)[:n_val]


def build_splits_in_memory(cfg: TrainConfig, data_dir: str | os.PathLike | None = None) -> Splits:
    """Read cfg.data, pack every document separately, and hold out the split_indices chunks, all in RAM
    (the reference the prepared datasets of pixar.data.prepare reproduce exactly)."""
    chunks, names = [], []
    for name, text in iter_documents(cfg.data, data_dir):
        chunks.extend(pack_document(text, cfg.max_chars, cfg.min_chars, cfg.packing))
        names.append(name)
    if not chunks:
        raise DataError(f"{', '.join(cfg.data)}: empty corpus (no chunk of >= {cfg.min_chars} characters "
                        f"in {len(names)} document(s))")
    val_ids = split_indices(len(chunks), cfg.seed, cfg.val_fraction, ", ".join(cfg.data))
    val_set = set(val_ids.tolist())
    train = [c for i, c in enumerate(chunks) if i not in val_set]
    val = [chunks[i] for i in val_ids]  # shuffled, so any prefix (eval batches, prompts) is a random sample
    log.info("data: %d documents -> %d training + %d validation chunks", len(names), len(train), len(val))
    return Splits(train, val)
