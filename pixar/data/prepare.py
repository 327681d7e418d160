"""Prepare once: sources -> documents -> chunks -> a memory-mapped dataset (pixar.data.dataset), in parallel.

    1. plan     sources -> work units of ~UNIT_BYTES in document order: whole .txt files, .jsonl byte
                ranges cut at newlines, batches of documents streamed from hf:<name>[:<config>]
    2. pack     each unit -> its chunks (pixar.data.sources.pack_document), in num_proc processes -> parts/*.arrow
                (steps 1 and 2, per unit: pixar.data.units)
    3. split    N = total chunks; pixar.data.sources.split_indices picks the validation ids exactly as
                build_splits_in_memory does; train = the other chunks in order, val = the ids in order,
                written as shards of SHARD_CHUNKS chunks (again in num_proc processes)
    4. publish  manifest.json last, then the temp folder replaces DIR atomically (checkpoint.atomic_dir)

Units and shards depend only on the inputs, so the output is byte-identical for any num_proc. The
fingerprint (sources with sizes + mtimes, packing config, format and packing versions) makes a repeated
prepare a no-op and keys the cache that `pixar train` on raw sources prepares into.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import time
from collections import deque
from pathlib import Path

import numpy as np

from pixar.checkpoint.store import CheckpointError, atomic_dir
from pixar.config_io import atomic_write_text
from pixar.data.hashing import sha256_files, source_hash_cache
from pixar.data.sources import DataError, Splits, source_files, split_indices
from pixar.data.dataset import (FORMAT, FORMAT_VERSION, MANIFEST, PACKING_KEYS, SPLITS, check_shards, is_prepared,
                                open_dataset, read_manifest, read_shard, replaceable_dataset, shard_name,
                                write_hf_metadata, write_shard)
from pixar.data.units import UNIT_BYTES, pack_unit, plan_units
from pixar.paths import DataNotFound, cache_dir, resolve_data_path
from pixar.provenance import slug, versions
from pixar.train.runlock import SiblingLock

log = logging.getLogger(__name__)

SHARD_CHUNKS = 65536
"""Chunks per published shard (~75 MB at max_chars 1180)."""
PACKING_VERSION = 1
"""Bump when split_sentences / pack_document change their output: invalidates every fingerprint."""


def packing_config(cfg) -> dict:
    """The packing settings of a TrainConfig (or anything with the same attributes) that a dataset records."""
    return {k: getattr(cfg, k) for k in PACKING_KEYS}


def describe_sources(sources: list[str], data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Each source with its files' absolute paths, sizes and mtimes (hf: sources by name only)."""
    out = []
    for spec in sources:
        if spec.startswith("hf:"):
            out.append({"spec": spec, "streaming": True})
            continue
        try:
            path = resolve_data_path(spec, data_dir)
        except DataNotFound as e:
            raise DataError(str(e)) from None
        if is_prepared(path):
            raise DataError(f"{path}: a prepared dataset, not a source; use it as train.data by itself")
        files = []
        if not path.is_dir() and not path.is_file():  # /dev/zero, a FIFO: hashing or reading would never end
            raise DataError(f"{path}: not a regular file or folder (a device or pipe?); name text files or folders")
        paths = [f.resolve() for f in (source_files(path) if path.is_dir() else [path])]
        try:
            digests = sha256_files(paths, source_hash_cache())
        except OSError as e:
            raise DataError(f"{e.filename or path}: cannot read ({e.strerror or e})") from None
        for f in paths:
            st = f.stat()
            files.append({"path": str(f), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digests[f]})
        out.append({"spec": spec, "files": files})
    return out


def _content(sources: list[dict]) -> list[dict]:
    """Sources as the fingerprint sees them: paths, sizes and content digests (an mtime alone changes nothing;
    a same-size edit with its mtime restored does)."""
    return [{k: v for k, v in s.items() if k != "files"} |
            ({"files": [{k: f[k] for k in ("path", "size", "sha256") if k in f} for f in s["files"]]}
             if "files" in s else {}) for s in sources]


def fingerprint(sources: list[dict], packing: dict) -> str:
    key = {"format_version": FORMAT_VERSION, "packing_version": PACKING_VERSION, "packing": packing,
           "sources": _content(sources)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def ordered_map(pool, num_proc: int, fn, tasks):
    """fn over tasks, results in task order, at most 2 x num_proc tasks in flight (bounded memory)."""
    if pool is None:
        yield from map(fn, tasks)
        return
    window, pending = 2 * num_proc, deque()
    for task in tasks:
        pending.append(pool.apply_async(fn, (task,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


# ---- 3. split -------------------------------------------------------------------------------------
def write_split_shard(task: tuple) -> dict:
    """(path, global chunk ids, part ends, parts folder) -> the shard's manifest entry."""
    path, ids, part_ends, parts = task
    import pyarrow as pa

    order = np.argsort(ids, kind="stable")
    sorted_ids, owner = ids[order], np.searchsorted(part_ends, ids[order], side="right")
    pieces = []
    for k in np.unique(owner):
        start = int(part_ends[k - 1]) if k else 0
        local = sorted_ids[owner == k] - start
        pieces.append(read_shard(Path(parts) / f"part-{k:06d}.arrow").take(pa.array(local)))
    gathered = pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return {"chunks": len(ids), **write_shard(Path(path), gathered.take(pa.array(inverse)))}


def build(tmp: Path, sources: list[dict], packing: dict, fp: str, num_proc: int, unit_bytes: int,
          mp_context: str) -> dict:
    """Steps 2-3 into the temp folder `tmp`; returns the manifest (written last)."""
    parts = tmp / "parts"
    parts.mkdir()
    what = ", ".join(s["spec"] for s in sources)
    ctx = mp.get_context(mp_context if mp_context in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(num_proc) if num_proc > 1 else None
    try:
        local = {}  # unit index -> pieces, for units with .jsonl ranges (a latin-1 redo needs them)

        def tasks():
            for i, pieces in enumerate(plan_units(sources, unit_bytes)):
                if any(p[0] == "jsonl" for p in pieces):
                    local[i] = pieces
                yield i, pieces, packing, str(parts), frozenset()

        counts, docs, latin1 = [], 0, set()
        for n, d, fell_back in ordered_map(pool, num_proc, pack_unit, tasks()):
            counts.append(n)
            docs += d
            latin1 |= fell_back
        if latin1:  # decode those files as latin-1 throughout, as the whole-file reader does
            redo = [(i, pieces, packing, str(parts), frozenset(latin1)) for i, pieces in local.items()
                    if any(p[1] in latin1 for p in pieces)]
            for (i, *_), (n, _, _) in zip(redo, ordered_map(pool, num_proc, pack_unit, redo)):
                counts[i] = n
        total = sum(counts)
        if total == 0:
            raise DataError(f"{what}: empty corpus (no chunk of >= {packing['min_chars']} characters in {docs} "
                            "document(s))")
        val_ids = split_indices(total, packing["seed"], packing["val_fraction"], what)
        is_val = np.zeros(total, dtype=bool)
        is_val[val_ids] = True
        ids = {"train": np.flatnonzero(~is_val), "val": val_ids.astype(np.int64)}
        part_ends = np.cumsum(counts, dtype=np.int64)
        jobs, splits = [], {}
        for split in SPLITS:
            (tmp / split).mkdir()
            n_shards = max(1, -(-len(ids[split]) // SHARD_CHUNKS))
            files = [f"{split}/{shard_name(k, n_shards)}" for k in range(n_shards)]
            jobs += [(str(tmp / f), ids[split][k * SHARD_CHUNKS:(k + 1) * SHARD_CHUNKS], part_ends, str(parts))
                     for k, f in enumerate(files)]
            splits[split] = {"chunks": len(ids[split]), "shards": [{"file": f} for f in files]}
            write_hf_metadata(tmp / split, [Path(f).name for f in files], fp)
        write_dataset_dict(tmp)
        entries = iter(ordered_map(pool, num_proc, write_split_shard, jobs))
        for split in SPLITS:
            for shard in splits[split]["shards"]:
                shard.update(next(entries))
    finally:
        if pool is not None:
            pool.terminate()
    for f in parts.iterdir():
        f.unlink()
    parts.rmdir()
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": fp, "packing": packing,
                "packing_version": PACKING_VERSION,
                "splitter": "pixar.data.sources.split_sentences (regex; NLTK punkt data is not shipped offline)",
                "code_versions": versions(), "sources": sources, "documents": docs, "chunks": total,
                "splits": splits}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


DATASET_DICT = "dataset_dict.json"


def write_dataset_dict(root: Path) -> None:
    """`dataset_dict.json` ({"splits": [...]}) at the top, as DatasetDict.save_to_disk writes it, so
    `datasets.load_from_disk(DIR)` opens the whole prepared folder as a DatasetDict (each split has its own
    state.json + dataset_info.json)."""
    atomic_write_text(root / DATASET_DICT, json.dumps({"splits": list(SPLITS)}) + "\n")


# ---- 4. publish, and the entry points -------------------------------------------------------------
class _Published(Exception):
    """Raised inside atomic_dir when another process published the same dataset first (keep theirs)."""


def what_changed(manifest: dict, sources: list[dict], packing: dict) -> str:
    for k in PACKING_KEYS:
        if manifest.get("packing", {}).get(k) != packing[k]:
            return f"{k} {manifest.get('packing', {}).get(k)!r} -> {packing[k]!r}"
    old = {f["path"]: f for s in _content(manifest.get("sources", [])) for f in s.get("files", [])}
    new = {f["path"]: f for s in _content(sources) for f in s.get("files", [])}
    for path in sorted(old.keys() | new.keys()):
        if old.get(path) != new.get(path):
            return f"{path} {'added' if path not in old else 'removed' if path not in new else 'changed'}"
    return "source list or versions changed"


def prepare(sources: list[str], out: str | os.PathLike, packing: dict, num_proc: int = 1,
            data_dir: str | os.PathLike | None = None, force: bool = False, unit_bytes: int = UNIT_BYTES,
            mp_context: str = "fork") -> tuple[dict, bool]:
    """Prepare `sources` into `out` -> (manifest, built). A no-op (built False) when `out` already holds
    the same fingerprint; a dataset of other sources/settings is refused unless force (then replaced)."""
    out, t0 = Path(out), time.perf_counter()
    desc = describe_sources(sources, data_dir)
    fp = fingerprint(desc, packing)
    with PrepareLock(out):
        return _prepare_locked(out, desc, fp, packing, num_proc, force, unit_bytes, mp_context, t0)


class PrepareLock(SiblingLock):
    """One prepare per --out at a time (a second is refused with one line naming the holder)."""

    what, error = "`pixar data prepare`", DataError


def _prepare_locked(out: Path, desc: list[dict], fp: str, packing: dict, num_proc: int, force: bool, unit_bytes: int,
                    mp_context: str, t0: float) -> tuple[dict, bool]:
    if is_prepared(out):
        try:
            manifest = read_manifest(out)
            if manifest["fingerprint"] == fp:
                check_shards(out, manifest)
                if not (out / DATASET_DICT).is_file():  # prepared before the DatasetDict file existed
                    write_dataset_dict(out)
                log.debug("%s: up to date (fingerprint %s)", out, fp)
                return manifest, False
            if not force:
                raise DataError(f"{out / MANIFEST}: prepared from other sources or settings "
                                f"({what_changed(manifest, desc, packing)}); pass --force to prepare it again")
        except DataError:
            if not force:
                raise
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not a prepared dataset (no {MANIFEST}); choose another --out")
    try:
        with atomic_dir(out, replaceable_dataset) as tmp:
            manifest = build(tmp, desc, packing, fp, max(1, num_proc), unit_bytes, mp_context)
            if not force and is_prepared(out) and read_manifest(out).get("fingerprint") == fp:
                raise _Published
    except _Published:
        return read_manifest(out), False
    except CheckpointError as e:  # atomic_dir refused to replace a folder that is not a dataset
        raise DataError(str(e)) from None
    except OSError as e:
        raise DataError(f"{out}: cannot write the dataset ({e.strerror or e}: {e.filename or out})") from None
    log.debug("%s: %d documents -> %d train + %d val chunks in %.1f s", out, manifest["documents"],
             manifest["splits"]["train"]["chunks"], manifest["splits"]["val"]["chunks"], time.perf_counter() - t0)
    return manifest, True


def source_bytes(sources: list[dict]) -> int:
    return sum(f["size"] for s in sources for f in s.get("files", []))


def cache_folder(cfg, sources: list[dict], packing: dict) -> Path:
    """<train.data_cache or <pixar cache>/datasets>/<first source's name>-<fingerprint>."""
    root = Path(cfg.data_cache).expanduser() if cfg.data_cache else cache_dir() / "datasets"
    name = slug(Path(sources[0]["spec"].rstrip("/")).name or "data")[:40]
    return root / f"{name}-{fingerprint(sources, packing)}"


def open_or_prepare(cfg, data_dir: str | os.PathLike | None = None) -> Splits:
    """pixar.data.stream.build_splits: open cfg.data's prepared dataset, or prepare the raw sources into the cache
    (under torch.distributed rank 0 prepares while the others wait) and open that."""
    packing = packing_config(cfg)
    paths = []
    for spec in cfg.data:
        try:
            paths.append(None if spec.startswith("hf:") else resolve_data_path(spec, data_dir))
        except DataNotFound as e:
            raise DataError(str(e)) from None
    prepared = [p for p in paths if p is not None and is_prepared(p)]
    if prepared:
        if len(cfg.data) > 1:
            raise DataError(f"{prepared[0]}: train.data may name one prepared dataset and nothing else "
                            "(prepare several sources together: pixar data prepare A B --out DIR)")
        return open_dataset(prepared[0], packing)
    desc = describe_sources(cfg.data, data_dir)
    out = cache_folder(cfg, desc, packing)
    num_proc = min(os.cpu_count() or 1, 8) if source_bytes(desc) > 4 * UNIT_BYTES else 1
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        manifest, built = prepare(cfg.data, out, packing, num_proc, data_dir, force=True)
        if built:
            log.info("prepared %s into %s: %d train + %d val chunks", ", ".join(cfg.data), out,
                     manifest["splits"]["train"]["chunks"], manifest["splits"]["val"]["chunks"])
        return open_dataset(out, packing)
    error = None
    if dist.get_rank() == 0:
        try:
            prepare(cfg.data, out, packing, num_proc, data_dir, force=True, mp_context="spawn")
        except DataError as e:
            error = e
    dist.barrier()  # the others wait for rank 0's dataset
    if error is not None:
        raise error
    if not is_prepared(out):  # a node that does not share rank 0's cache folder (or rank 0 failed)
        prepare(cfg.data, out, packing, 1, data_dir, mp_context="spawn")
    return open_dataset(out, packing)
