"""English word lists for "readability", built from data we ship (no download).

Readability (the paper's readability, as the official code implements it; `babi.ipynb` / `lambada.ipynb`
`evaluate_babi`): a read-back is readable when its first whitespace token, lower-cased with punctuation KEPT,
is an English word. Punctuation is kept as in the paper, so "word," or "don't" are not words.

Vocabularies (`VOCABULARIES`, `build_wordlist(..., vocabulary=...)`):

    paper           (default) the paper's list: every word of $PIXAR_DATA/wordfreq/unigram_freq.csv (333,333
                    words, [a-z]+) plus every word of `extra_texts` (the evaluation set), a word being a run of
                    ASCII letters, lower-cased (the notebooks' `add_word`: re.findall('([a-zA-Z]+)', text)).
    paper-official  the set the official notebooks actually built: `pd.read_csv` turns the words "null" and
                    "nan" into NaN, and `str(word).lower()` makes both "nan", so "null" is missing (333,332
                    entries, the count both notebooks print). In lambada.ipynb `for a, b in data` iterates
                    the HF dataset's rows as dicts, i.e. over the keys 'text' and 'domain', so NO LAMBADA
                    word is added (1,009 of its words are not in the csv; the printed count stays 333,332);
                    that quirk belongs to the protocol (harness.eval.protocols passes no extra texts there).
    corpus          this harness's earlier list: corpus words seen >= min_count times (default 2) in the book
                    corpus $PIXAR_DATA/corpus, plus every word of `extra_texts`; a word is a maximal run of
                    Unicode letters (regex [^\\W\\d_]+), lower-cased; the corpus is every *.txt under corpus/
                    except licence/readme files (files that are not UTF-8 are read as Latin-1). ~34k words.

Caching (corpus only; the csv is read directly in ~0.2 s): corpus word counts go to
`<cache>/wordcounts-<h>.tsv` (h = sha256 of the corpus files' names and bytes), the list to
`<cache>/wordlist-<h'>.txt` (h' = h + min_count + sha256 of extra_texts); both are written atomically and
rebuilt when unreadable. <cache> = the `cache_dir` argument, else $PIXAR_CACHE, else
$XDG_CACHE_HOME/pixar, else ~/.cache/pixar. An unwritable cache only logs a warning.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pixar.config_io import atomic_write_text
from pixar.data.sources import DataError
from pixar.paths import DataNotFound, cache_dir, data_dir as resolve_data_dir

log = logging.getLogger(__name__)

WORD_RE = re.compile(r"[^\W\d_]+")
PAPER_WORD_RE = re.compile(r"[a-zA-Z]+")  # the notebooks' add_word pattern
UNIGRAM_FILE = "wordfreq/unigram_freq.csv"
UNIGRAM_SIZE = 333_333
VOCABULARIES = ("paper", "paper-official", "corpus")
_SKIP_FILES = ("license", "readme")
_VERSION = "1"  # bump when the tokenisation changes (invalidates caches)


def corpus_files(data: str | os.PathLike | None = None) -> list[Path]:
    """The corpus text files: <data>/corpus/**/*.txt (or <data>/**/*.txt when `data` is the corpus itself)."""
    root = resolve_data_dir(data, required=True)
    folder = root / "corpus" if (root / "corpus").is_dir() else root
    files = sorted(p for p in folder.rglob("*.txt") if not p.name.lower().startswith(_SKIP_FILES))
    if not files:
        raise DataNotFound(f"no corpus *.txt files under {folder} (expected a data dir laid out like shared/data)")
    return files


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def _try_write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as e:
        log.warning("could not cache %s (%s); continuing without the cache", path, e)


def word_counts(data: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> Counter:
    """Lower-cased word -> occurrences in the corpus (cached; see the module docstring)."""
    files = corpus_files(data)
    h = hashlib.sha256(f"v{_VERSION}".encode())
    for p in files:
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    path = cache_dir(cache) / f"wordcounts-{h.hexdigest()[:20]}.tsv"
    if path.is_file():
        try:
            counts = Counter()
            for line in path.read_text(encoding="utf-8").splitlines():
                w, n = line.split("\t")
                counts[w] = int(n)
            if counts:
                return counts
        except (OSError, ValueError, UnicodeDecodeError) as e:
            log.warning("ignoring unreadable cache %s (%s)", path, e)
    counts = Counter()
    for p in files:
        counts.update(_words(_read_text(p)))
    _try_write(path, "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items())))
    return counts


def unigram_words(data: str | os.PathLike | None = None, path: str | os.PathLike | None = None) -> list[str]:
    """The words of unigram_freq.csv (header `word,count`), in file order; bad rows -> ValueError naming file:line."""
    if path is None:
        root = resolve_data_dir(data, required=True)
        path = root / UNIGRAM_FILE
    path = Path(path)
    if not path.is_file():
        raise DataNotFound(f"{path}: the paper's word list (unigram_freq.csv) is not there "
                           "(see shared/data/README.md section 8)")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != "word,count":
        raise DataError(f"{path}:1: expected the header 'word,count'")
    words = []
    for n, line in enumerate(lines[1:], 2):
        word, sep, count = line.partition(",")
        if not sep or not word or not count.strip().isdigit():
            raise DataError(f"{path}:{n}: expected '<word>,<count>', got {line[:60]!r}")
        words.append(word)
    return words


def paper_words(texts: Iterable[str]) -> set[str]:
    """Lower-cased ASCII-letter runs of texts (the notebooks' add_word)."""
    return {w.lower() for t in texts for w in PAPER_WORD_RE.findall(t)}


def paper_vocabulary(data: str | os.PathLike | None = None, extra_texts: Iterable[str] = (),
                     official: bool = False) -> set[str]:
    """unigram_freq.csv's words + paper_words(extra_texts); official=True reproduces pandas' NaN quirk
    ("null" and "nan" both read as NaN, both become "nan")."""
    words = {w.lower() for w in unigram_words(data)}
    if official:
        words = (words - {"null", "nan"}) | {"nan"}
    return words | paper_words(extra_texts)


def build_wordlist(data: str | os.PathLike | None = None, extra_texts: Iterable[str] = (), min_count: int = 2,
                   cache: str | os.PathLike | None = None, vocabulary: str = "paper") -> set[str]:
    """The `vocabulary` word list (module docstring) with every word of `extra_texts` added; min_count and
    cache apply to the corpus list only."""
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r} (known: {', '.join(VOCABULARIES)})")
    if vocabulary != "corpus":
        return paper_vocabulary(data, extra_texts, official=vocabulary == "paper-official")
    return corpus_wordlist(data, extra_texts, min_count, cache)


def corpus_wordlist(data: str | os.PathLike | None = None, extra_texts: Iterable[str] = (), min_count: int = 2,
                    cache: str | os.PathLike | None = None) -> set[str]:
    """Corpus words seen >= min_count times, plus every word of `extra_texts` (all lower-cased)."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts = word_counts(data, cache)
    extra = sorted({w for t in extra_texts for w in _words(t)})
    h = hashlib.sha256(f"v{_VERSION}/{min_count}/".encode())
    for w, n in sorted(counts.items()):
        if n >= min_count:
            h.update(w.encode() + b"\n")
    h.update(b"\0extra\0" + "\n".join(extra).encode())
    path = cache_dir(cache) / f"wordlist-{h.hexdigest()[:20]}.txt"
    if path.is_file():
        try:
            words = set(path.read_text(encoding="utf-8").split())
            if words:
                return words
        except (OSError, UnicodeDecodeError) as e:
            log.warning("ignoring unreadable cache %s (%s)", path, e)
    words = {w for w, n in counts.items() if n >= min_count} | set(extra)
    _try_write(path, "".join(f"{w}\n" for w in sorted(words)))
    return words


class Readability:
    """Is the first whitespace token of a read-back (lower-cased, punctuation kept) an English word?"""

    def __init__(self, words: Iterable[str]):
        self.words = frozenset(w.lower() for w in words)
        if not self.words:
            raise ValueError("Readability needs a non-empty word list")

    def first_token(self, text: str) -> str:
        parts = text.split(maxsplit=1)
        return parts[0].lower() if parts else ""

    def is_readable(self, text: str) -> bool:
        return self.first_token(text) in self.words

    def is_readable_any(self, texts: Iterable[str]) -> bool:
        """The paper's union: readable if any engine's reading is."""
        return any(self.is_readable(t) for t in texts)

    def rate(self, texts: Iterable[str]) -> float:
        """Fraction of readable texts (0.0 for none)."""
        flags = [self.is_readable(t) for t in texts]
        return sum(flags) / len(flags) if flags else 0.0


def corpus_lines(data: str | os.PathLike | None = None, n: int = 200, width: int = 60, seed: int = 0) -> list[str]:
    """`n` lines of about `width` characters of corpus prose (word-wrapped paragraphs, whitespace
    collapsed, chosen with random.Random(seed)); for read-back accuracy checks."""
    import random

    lines = []
    for p in corpus_files(data):
        for para in re.split(r"\n\s*\n", _read_text(p)):
            line = ""
            for w in para.split():
                if line and len(line) + 1 + len(w) > width:
                    lines.append(line)
                    line = w
                else:
                    line = f"{line} {w}" if line else w
            if len(line) >= width // 2:
                lines.append(line)
    rng = random.Random(seed)
    return rng.sample(lines, min(n, len(lines)))
