"""Prepared datasets on disk: Arrow shards + manifest.json, opened memory-mapped (docs/data.md).

    DIR/manifest.json                 format + version, packing config, sources (sizes, mtimes), fingerprint,
                                      per split: chunk count and shards (file, chunks, bytes, sha256)
    DIR/train/data-00000-of-000NN.arrow   Arrow IPC stream files, one record batch of one string column
    DIR/train/state.json, dataset_info.json   so `datasets.load_from_disk(DIR/"train")` opens them too
    DIR/val/...                       the validation split, in its (shuffled) order

ChunkTable is one split as a read-only sequence of strings: len(t), t[i] -> str, t[a:b] -> list[str],
iteration. It pickles as (folder, split, shard list), so DataLoader workers re-open the memory-mapped
files instead of receiving a copy of the chunks. Pages are faulted in only when a chunk is read and
unmapped again right after (release_pages; ~50 us a read), so resident memory does not grow with the
number of chunks read; the page cache keeps them hot for every process on the node.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import operator
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pixar.data.hashing import cache_dir, file_sha256, sha256_files
from pixar.data.sources import DataError, Splits

FORMAT = "pixar-chunks"
FORMAT_VERSION = 1
"""Bump when the on-disk layout changes; datasets of another version are refused (prepare them again)."""
MANIFEST = "manifest.json"
HASH_CACHE = ".sha256-cache.json"
"""Beside the manifest: each shard's verified sha256 under its stat key (pixar.data.hashing), so a dataset is
hashed in full on its first open only."""
SPLITS = ("train", "val")
PACKING_KEYS = ("max_chars", "min_chars", "seed", "val_fraction", "packing")


def shard_name(k: int, n: int) -> str:
    return f"data-{k:05d}-of-{n:05d}.arrow"


def write_shard(path: Path, texts, digest: bool = True) -> dict:
    """Write a pyarrow string array (or list of str) as one Arrow IPC stream batch -> {bytes, sha256}."""
    import pyarrow as pa

    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = pa.concat_arrays(arr.chunks) if arr.num_chunks else pa.array([], pa.string())
    batch = pa.record_batch([arr.cast(pa.string())], names=["text"])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return {"bytes": path.stat().st_size, **({"sha256": file_sha256(path)} if digest else {})}


def map_random(path: Path) -> mmap.mmap:
    """A read-only memory map of `path`, advised MADV_RANDOM: training reads chunks at random, so a page
    fault should not pull in the disk's whole read-ahead window (8 MB here; costly on network filesystems)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise OSError("empty file")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mm.madvise(mmap.MADV_RANDOM)
    return mm


def read_shard(path: Path, rows: int | None = None):
    """The memory-mapped string column of one shard (zero-copy); a missing or corrupt file -> DataError."""
    return open_shard(path, rows)[0]


def open_shard(path: Path, rows: int | None = None):
    """-> (string column, its mmap): read_shard, with the map for release_pages."""
    import pyarrow as pa

    try:
        mm = map_random(path)
        table = pa.ipc.open_stream(pa.BufferReader(pa.py_buffer(mm))).read_all()
    except FileNotFoundError:
        raise DataError(f"{path}: missing shard (the dataset is incomplete; prepare it again)") from None
    except (pa.ArrowException, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: corrupt shard ({msg}); prepare the dataset again") from None
    if table.column_names != ["text"] or (rows is not None and table.num_rows != rows):
        raise DataError(f"{path}: corrupt shard ({table.num_rows} rows of {table.column_names}, the manifest "
                        f"says {rows} rows of ['text']); prepare the dataset again")
    col = table.column("text")
    arr = col.chunk(0) if col.num_chunks == 1 else pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], pa.string())
    return arr, mm


def release_pages(mm: mmap.mmap) -> None:
    """Unmap the pages a read faulted in (MADV_DONTNEED; file-backed, so they stay in the page cache and the
    next read maps them again): a process's resident memory stays that of its own heap however many chunks
    it has read. On this kernel a fault maps a whole page-cache folio (up to 2 MB), so without it every
    random chunk read would add ~2 MB of resident pages to each worker."""
    if hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


class ChunkTable(Sequence):
    """One split of a prepared dataset, memory-mapped; shards are opened on first access."""

    def __init__(self, root: str | os.PathLike, split: str, shards: list[dict]):
        self.root, self.split, self.shards = Path(root), split, shards
        self._ends = np.cumsum([s["chunks"] for s in shards], dtype=np.int64)
        self._arrays: dict[int, tuple] = {}  # shard -> (string array, mmap)

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def _array(self, k: int):
        if k not in self._arrays:
            self._arrays[k] = open_shard(self.root / self.shards[k]["file"], self.shards[k]["chunks"])
        return self._arrays[k][0]

    def _done(self, k: int) -> None:
        release_pages(self._arrays[k][1])

    def _locate(self, i: int) -> tuple[int, int]:
        k = int(np.searchsorted(self._ends, i, side="right"))
        return k, i - (int(self._ends[k - 1]) if k else 0)

    def __getitem__(self, i):
        n = len(self)
        if isinstance(i, slice):
            lo, hi, step = i.indices(n)
            return self._range(lo, hi) if step == 1 else [self[j] for j in range(lo, hi, step)]
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"chunk {i} out of range (split {self.split!r} has {n})")
        k, j = self._locate(i)
        text = self._array(k)[j].as_py()
        self._done(k)
        return text

    def _range(self, lo: int, hi: int) -> list[str]:
        out = []
        while lo < hi:
            k, j = self._locate(lo)
            take = min(hi - lo, self.shards[k]["chunks"] - j)
            out += self._array(k).slice(j, take).to_pylist()
            self._done(k)
            lo += take
        return out

    def __iter__(self):
        for k, shard in enumerate(self.shards):
            for lo in range(0, shard["chunks"], 4096):
                texts = self._array(k).slice(lo, 4096).to_pylist()
                self._done(k)
                yield from texts

    def __eq__(self, other) -> bool:
        if isinstance(other, ChunkTable) and (other.root, other.split) == (self.root, self.split):
            return True
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None

    def __add__(self, other) -> list[str]:
        return list(self) + list(other)

    def __radd__(self, other) -> list[str]:
        return list(other) + list(self)

    def __getstate__(self) -> dict:
        return {"root": str(self.root), "split": self.split, "shards": self.shards}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"], state["split"], state["shards"])

    def __repr__(self) -> str:
        return f"ChunkTable({str(self.root)!r}, {self.split!r}, {len(self)} chunks)"


def is_prepared(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def replaceable_dataset(path: Path) -> bool:
    """What `data prepare --force` may replace: a prepared dataset (or an empty folder), never another folder."""
    return path.is_dir() and (is_prepared(path) or not any(path.iterdir()))


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a prepared dataset; missing, unreadable or another format version -> DataError."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no manifest, not a prepared dataset (run `pixar data prepare`)") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable manifest ({str(e).splitlines()[0]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: prepared by an incompatible version (format version "
                        f"{manifest.get('format_version')}, this pixar reads {FORMAT_VERSION}); prepare it again")
    return manifest


def check_packing(manifest: dict, packing: dict, where: Path) -> None:
    """One line naming the manifest when its packing config differs from the run's `packing`."""
    have = manifest.get("packing", {})
    diff = [f"{k}={have.get(k)!r} (the run has {packing[k]!r})" for k in PACKING_KEYS if have.get(k) != packing[k]]
    if diff:
        raise DataError(f"{where / MANIFEST}: prepared with {', '.join(diff)}; prepare it again with the "
                        "run's settings (`pixar data prepare ... --config <the run's preset>`) or change train.*")


def shard_path(root: Path, shard: dict) -> Path:
    """The shard's file, which must lie inside the dataset folder (a manifest naming `../other.arrow` or an
    absolute path is refused: a dataset never reads another's files)."""
    name = shard.get("file") if isinstance(shard, dict) else None
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise DataError(f"{root / MANIFEST}: shard {name!r} is outside the dataset folder; refusing it "
                        "(prepare the dataset again)")
    return root / name


def manifest_shards(root: Path, manifest: dict) -> list[tuple[Path, dict]]:
    """(path, entry) of every shard the manifest lists, each confined to `root`; a malformed manifest -> DataError."""
    try:
        entries = [s for split in SPLITS for s in manifest["splits"][split]["shards"]]
    except (KeyError, TypeError):
        raise DataError(f"{root / MANIFEST}: malformed manifest (no splits/shards); prepare the dataset again") from None
    return [(shard_path(root, s), s) for s in entries]


def hash_cache_file(root: Path) -> Path:
    """DIR/.sha256-cache.json, or for a dataset in a folder we cannot write (a read-only shared filesystem) a file
    in the user's pixar cache named after the dataset's absolute path, so it is still hashed once per user."""
    if os.access(root, os.W_OK):
        return root / HASH_CACHE
    return cache_dir() / "dataset-sha256" / f"{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]}.json"


def verify_shards(root: Path, manifest: dict, cache: bool = True) -> int:
    """Every shard's sha256 equals the manifest's (a same-size edit, bit rot, a shard of another dataset);
    with `cache`, digests are reused while a shard's stat key is unchanged (first open hashes, later opens
    stat). Returns the number of shards checked; a mismatch -> DataError naming the shard."""
    shards = manifest_shards(root, manifest)
    check_shards(root, manifest)
    digests = sha256_files([p for p, _ in shards], hash_cache_file(root) if cache else None)
    for path, entry in shards:
        want = entry.get("sha256")
        if want and digests[path] != want:
            raise DataError(f"{path}: corrupt shard (sha256 {digests[path][:16]}..., the manifest says {want[:16]}...); "
                            "prepare the dataset again")
    return len(shards)


def check_shards(root: Path, manifest: dict) -> None:
    """Every shard the manifest lists exists with the size it lists (cheap: no reading)."""
    for path, shard in manifest_shards(root, manifest):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{path}: missing shard (the dataset is incomplete; prepare it again)") from None
        if size != shard.get("bytes"):
            raise DataError(f"{path}: corrupt shard ({size} bytes, the manifest says {shard.get('bytes')}); "
                            "prepare the dataset again")


def open_dataset(root: str | os.PathLike, packing: dict | None = None) -> Splits:
    """Splits of ChunkTables over a prepared dataset, after checking its manifest (and packing)."""
    root = Path(root)
    manifest = read_manifest(root)
    if packing is not None:
        check_packing(manifest, packing, root)
    verify_shards(root, manifest)
    tables = [ChunkTable(root, s, manifest["splits"][s]["shards"]) for s in SPLITS]
    return Splits(*tables, fingerprint=manifest["fingerprint"])


def write_hf_metadata(folder: Path, files: list[str], fingerprint: str) -> None:
    """state.json + dataset_info.json as `datasets.Dataset.save_to_disk` writes them (for load_from_disk)."""
    state = {"_data_files": [{"filename": f} for f in files], "_fingerprint": fingerprint,
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
             "_output_all_columns": False, "_split": None}
    info = {"citation": "", "description": "pixar prepared chunks", "features": {"text": {"dtype": "string", "_type": "Value"}},
            "homepage": "", "license": ""}
    (folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
