"""Readability per reading engine, and a stricter labelled variant beside the paper's.

The paper's readability (harness.eval.official_scorers: the notebooks' `evaluate_babi`) asks whether the first
whitespace token of a reading, lower-cased with punctuation kept, is in a 333k-word list; a PIXAR example is
readable when ANY engine's reading is (the union). Two things hide in that one number:

    which engine   our union adds our own glyph decoder to Tesseract (the paper's was PaddleOCR or Tesseract),
                   so each engine's readability is reported beside the union: `readability_<engine>`
                   (row field `readable_by`), and the union keeps its name, `readability`.
    what counts    1-3 letter strings that happen to be in the list (`no, aoi, uo, un, bb, ii`) count, and
                   GPT-2's tokens keep punctuation (`other.`, `"i`) and so do not. The strict variant
                   (`readability_strict`, per engine `readability_strict_<engine>`; row fields
                   `readable_strict`, `readable_strict_by`) takes the same first whitespace token, lower-cases
                   it, strips punctuation and symbols from both ends (Unicode categories P* and S*: quotes,
                   full stops, the glyph decoder's abstention mark), and counts it when what is left is
                   >= STRICT_MIN_LETTERS ASCII letters and nothing else, in the protocol's vocabulary. The same
                   rule is applied to GPT-2's text and to every OCR reading.

The paper's metric is unchanged under its name; the variants are labelled and documented in METRIC_NOTES.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping, Sequence

STRICT_MIN_LETTERS = 3
METRIC_NOTES = {
    "readability": "the paper's readability: the first whitespace token of the reading, lower-cased with "
                   "punctuation kept, is in the protocol's vocabulary (protocol_specs.vocabulary); with several "
                   "readings, readable if ANY engine's is (our paddle-less union: glyph or Tesseract), 95% Wilson "
                   "interval",
    "readability_strict": f"stricter variant (ours): the first whitespace token, lower-cased, punctuation and "
                          f"symbols stripped from both ends, is >= {STRICT_MIN_LETTERS} ASCII letters and in the "
                          "protocol's vocabulary; same rule for GPT-2 text and OCR readings; union over engines, "
                          "95% Wilson interval",
}


def metric_note(metric: str) -> str | None:
    """What a readability metric key means (None for other keys)."""
    if metric in METRIC_NOTES:
        return METRIC_NOTES[metric]
    for base in ("readability_strict", "readability"):
        if metric.startswith(base + "_"):
            engine = metric[len(base) + 1:]
            rule = "the stricter variant" if base == "readability_strict" else "the paper's readability"
            return f"{rule} of the {engine} reading alone (not the union), 95% Wilson interval"
    return None


def _edge(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def strict_token(text: str) -> str:
    """The first whitespace token, lower-cased, with punctuation and symbols stripped from both ends."""
    parts = text.split(maxsplit=1)
    tok = parts[0].lower() if parts else ""
    a, b = 0, len(tok)
    while a < b and _edge(tok[a]):
        a += 1
    while b > a and _edge(tok[b - 1]):
        b -= 1
    return tok[a:b]


def strict_readable(text: str, vocab: Collection[str]) -> bool:
    """The strict variant for one reading (module docstring)."""
    tok = strict_token(text)
    return len(tok) >= STRICT_MIN_LETTERS and tok.isascii() and tok.isalpha() and tok in vocab


def row_fields(readable, texts: Mapping[str, str], vocab: Collection[str] | None) -> dict:
    """Per-reading readability for one example. readable: the protocol scorer's `(text, vocab) -> bool` rule;
    texts: {engine or "text": reading}. {} without a vocabulary (readability is then not scored)."""
    if vocab is None:
        return {}
    by = {e: bool(readable(t, vocab)) for e, t in texts.items()}
    strict = {e: strict_readable(t, vocab) for e, t in texts.items()}
    return {"readable_by": by, "readable_strict": any(strict.values()), "readable_strict_by": strict}


def rescore(rows: Sequence[Mapping], readable, vocab: Collection[str]) -> tuple[list[dict], int]:
    """Rows scored before these fields existed (their 'read' texts kept) -> (copies with row_fields added, the
    number whose recomputed union differs from their stored 'readable': 0 when `readable` and `vocab` are the
    ones they were scored with)."""
    out, differ = [], 0
    for r in rows:
        fields = row_fields(readable, r["read"], vocab)
        differ += r.get("readable") is not None and any(fields["readable_by"].values()) != bool(r["readable"])
        out.append({**r, **fields})
    return out, differ


def readability_flags(rows: Sequence[Mapping]) -> dict[str, list[bool]]:
    """Scored rows -> {metric: per-example flags}: `readability` (the union) and, when the rows carry them,
    `readability_<engine>`, `readability_strict` and `readability_strict_<engine>` (per engine only with
    more than one reading). Rows scored before these fields existed give `readability` alone."""
    if not rows or rows[0].get("readable") is None:
        return {}
    flags = {"readability": [bool(r["readable"]) for r in rows]}
    engines = list(rows[0].get("readable_by") or {})
    if len(engines) > 1:
        flags.update({f"readability_{e}": [bool(r["readable_by"][e]) for r in rows] for e in engines})
    if "readable_strict" in rows[0]:
        flags["readability_strict"] = [bool(r["readable_strict"]) for r in rows]
        if len(engines) > 1:
            flags.update({f"readability_strict_{e}": [bool(r["readable_strict_by"][e]) for r in rows]
                          for e in engines})
    return flags
