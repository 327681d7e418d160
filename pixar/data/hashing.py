"""sha256 of files, each hashed once: the digest is cached in a JSON sidecar under the file's stat key
(size, mtime_ns, ctime_ns, inode), so a later check costs one stat. Any edit changes the key (an edit that
restores the mtime still moves ctime, which no user call can set), and a changed key means hashing again.

    sha256_files(paths, cache_file)   {path: hex digest}; cache_file None = no cache (always hash)

The cache is advisory: unreadable, or in a folder we may not write (a read-only dataset), it is ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pixar.config_io import atomic_write_text
from pixar.paths import cache_dir


def source_hash_cache() -> Path:
    """Where raw sources' digests are cached: <pixar cache>/source-sha256.json."""
    return cache_dir() / "source-sha256.json"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_cache(cache_file: Path) -> dict:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_files(paths: list[Path], cache_file: Path | None = None) -> dict[Path, str]:
    """{path: sha256} of `paths`; digests whose stat key matches the cache are not recomputed."""
    cache = _read_cache(cache_file) if cache_file is not None else {}
    out, changed = {}, False
    for p in paths:
        key = stat_key(p.stat())
        entry = cache.get(str(p))
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == key and isinstance(entry[1], str):
            out[p] = entry[1]
            continue
        out[p] = file_sha256(p)
        cache[str(p)] = [key, out[p]]
        changed = True
    if changed and cache_file is not None:
        cache = {k: v for k, v in cache.items() if os.path.exists(k)}  # forget deleted files
        try:
            atomic_write_text(cache_file, json.dumps(cache, sort_keys=True))
        except OSError:
            pass  # a read-only folder: the next open hashes again
    return out
