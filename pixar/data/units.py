"""The work units of a prepare (pixar.data.prepare): steps 1 (plan) and 2 (pack) of its pipeline.

A unit is a list of pieces of ~UNIT_BYTES in document order: whole .txt files, .jsonl byte ranges cut after a
newline, or batches of documents streamed from hf:<name>[:<config>]. `pack_unit` (run in the prepare's process
pool) reads and decodes a unit's documents exactly as pixar.data.sources.iter_documents does and writes their
chunks to parts/part-<index>.arrow, so the parts depend only on the inputs, never on num_proc.
"""
from __future__ import annotations

import os
from pathlib import Path

from pixar.data.dataset import write_shard
from pixar.data.sources import DataError, decode_bytes, hf_documents, jsonl_texts, pack_document, strip_gutenberg

__all__ = ["UNIT_BYTES", "file_pieces", "pack_unit", "plan_units", "unit_documents"]

UNIT_BYTES = 4 << 20
"""Work-unit size: the parallel grain (and the size of the temporary parts)."""


# ---- 1. plan ------------------------------------------------------------------------------------
def file_pieces(f: dict, unit_bytes: int) -> list[tuple]:
    """A file -> ("txt"|"jsonl", path, start, end) byte ranges; .jsonl files over unit_bytes are cut
    after a newline every ~unit_bytes, .txt files (one document each) stay whole."""
    path, size = f["path"], f["size"]
    fmt = "jsonl" if path.lower().endswith(".jsonl") else "txt"
    if fmt == "txt" or size <= unit_bytes:
        return [(fmt, path, 0, size)]
    cuts, pos = [0], unit_bytes
    with open(path, "rb") as fh:
        while pos < size:
            fh.seek(pos)
            while True:
                block = fh.read(1 << 16)
                nl = block.find(b"\n")
                if nl >= 0 or not block:
                    pos = pos + nl + 1 if nl >= 0 else size
                    break
                pos += len(block)
            if pos < size:
                cuts.append(pos)
            pos += unit_bytes
    cuts.append(size)
    return [(fmt, path, a, b) for a, b in zip(cuts, cuts[1:])]


def plan_units(sources: list[dict], unit_bytes: int = UNIT_BYTES):
    """Yield lists of pieces (file ranges, or ("hf", spec, texts)) of ~unit_bytes, in document order."""
    pending, size = [], 0
    for src in sources:
        if "files" not in src:  # hf: streamed in the main process, packed in the pool
            if pending:
                yield pending
                pending, size = [], 0
            texts, n = [], 0
            for text in hf_documents(src["spec"]):
                texts.append(text)
                n += len(text)
                if n >= unit_bytes:
                    yield [("hf", src["spec"], texts)]
                    texts, n = [], 0
            if texts:
                yield [("hf", src["spec"], texts)]
            continue
        for f in src["files"]:
            for piece in file_pieces(f, unit_bytes):
                pending.append(piece)
                size += piece[3] - piece[2]
                if size >= unit_bytes:
                    yield pending
                    pending, size = [], 0
    if pending:
        yield pending


# ---- 2. pack --------------------------------------------------------------------------------------
def unit_documents(pieces: list[tuple], latin1: frozenset = frozenset(), fell_back: set | None = None):
    """The documents of a unit's pieces, read and decoded as pixar.data.sources.iter_documents does. A file is
    decoded as a whole there, so a .jsonl range of a file in `latin1` skips UTF-8; the paths of partial
    ranges that needed latin-1 are added to `fell_back` (pixar.data.prepare.build then redoes that file's ranges)."""
    for piece in pieces:
        if piece[0] == "hf":
            yield from piece[2]
            continue
        fmt, path, start, end = piece
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                raw = fh.read(end - start)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None
        if len(raw) != end - start:
            raise DataError(f"{path}: changed while being prepared (shorter than its {end} bytes); prepare again")
        if start == 0 and not raw.strip():
            raise DataError(f"{path}: empty source file (no text)")
        text, latin = decode_bytes(raw, path, latin1=path in latin1, bom=start == 0)
        if latin and fell_back is not None and fmt == "jsonl" and (start, end) != (0, os.path.getsize(path)):
            fell_back.add(path)
        if fmt == "txt":
            yield strip_gutenberg(text)
            continue
        try:
            docs = list(jsonl_texts(path, text))
        except DataError:
            if start == 0:
                raise
            with open(path, "rb") as fh:  # only on error: number the lines from the file's start
                first = fh.read(start).count(b"\n") + 1
            list(jsonl_texts(path, text, first))
            raise
        yield from docs


def pack_unit(task: tuple) -> tuple[int, int, set]:
    """(index, pieces, packing, parts folder, latin-1 paths) -> (chunks, documents, paths of partial .jsonl
    ranges that fell back to latin-1); writes parts/part-<index>.arrow."""
    index, pieces, packing, parts, latin1 = task
    chunks, docs, fell_back = [], 0, set()
    for doc in unit_documents(pieces, latin1, fell_back):
        chunks.extend(pack_document(doc, packing["max_chars"], packing["min_chars"], packing["packing"]))
        docs += 1
    write_shard(Path(parts) / f"part-{index:06d}.arrow", chunks, digest=False)
    return len(chunks), docs, fell_back
