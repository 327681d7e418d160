"""Provenance shared by every record we write: package versions and file-name-safe slugs.

    versions()      {"python", "pixar-harness", "torch", ...} for the packages that are installed
    slug(name)      "pixar:runs/x" -> "pixar_runs_x" (letters, digits, '-', '_', '.' kept)
"""
from __future__ import annotations

import platform
from importlib import metadata

TRACKED_PACKAGES = ("pixar-harness", "torch", "numpy", "pillow", "safetensors", "transformers", "lm-eval",
                    "datasets", "pyarrow", "pandas", "pytesseract", "textattack")


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Python and the installed versions of TRACKED_PACKAGES (+ `extra`); missing packages are left out."""
    out = {"python": platform.python_version()}
    for pkg in TRACKED_PACKAGES + tuple(extra):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def slug(name: str) -> str:
    """A file-name-safe form of `name`: every character but letters, digits, '-', '_' and '.' becomes '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
