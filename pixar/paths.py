"""Where things live: the data directory ($PIXAR_DATA), our cache ($PIXAR_CACHE) and the fonts.

Nothing here downloads. Fonts come from (in order) an explicit path, the PyPI package `pixar-render`
(installed with --no-deps; we only read its font files and never import it, since its __init__ needs
PangoCairo), or the data directory's `fonts/` folder.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from PIL import ImageFont

from pixar.errors import PixarError

DATA_ENV = "PIXAR_DATA"
PIXELOID_FILE = "PixeloidSans-mLxMm.ttf"
GONOTO_FILE = "GoNotoCurrent.ttf"
FONT_INSTALL_HINT = "pip install --no-deps pixar-render==0.5.1 (or set PIXAR_DATA to a folder with fonts/)"


class DataNotFound(PixarError, FileNotFoundError):
    """Required data (font, corpus, task file) is missing; the message says how to get it."""


def data_dir(explicit: str | os.PathLike | None = None, required: bool = False) -> Path | None:
    """The data folder (laid out like shared/data): the explicit argument, else $PIXAR_DATA."""
    value = explicit or os.environ.get(DATA_ENV)
    if not value:
        if required:
            raise DataNotFound(f"no data directory: pass --data-dir or set {DATA_ENV} (a folder laid out like shared/data)")
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataNotFound(f"data directory {path} does not exist (from --data-dir or {DATA_ENV})")
    return path


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Our cache folder (word lists, tokenizers, prepared datasets): `explicit`, else $PIXAR_CACHE, else
    $XDG_CACHE_HOME/pixar (~/.cache/pixar)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("PIXAR_CACHE"):
        return Path(os.environ["PIXAR_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pixar"


def resolve_data_path(name: str | os.PathLike, data: str | os.PathLike | None = None) -> Path:
    """A path as given if it exists, else relative to the data directory."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    d = data_dir(data)
    if d is not None and (d / p).exists():
        return d / p
    where = f" (also looked in {d})" if d else f" (set {DATA_ENV} to look in a data directory)"
    raise DataNotFound(f"{name}: no such file or folder{where}")


def _pixar_render_fonts() -> Path | None:
    try:
        spec = importlib.util.find_spec("pixar_render")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "resources" / "fonts"
    return folder if folder.is_dir() else None


def find_font(which: str = "pixeloid", explicit: str | os.PathLike | None = None,
              data: str | os.PathLike | None = None) -> Path:
    """Locate a font file. `which` is 'pixeloid' (the paper's font) or 'gonoto' (fallback); `data` is the data
    folder to look in (default $PIXAR_DATA)."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise DataNotFound(f"font file {p} does not exist")
        try:  # a garbage file (or /etc/passwd) is one line here, not a FreeType traceback mid-render
            ImageFont.truetype(str(p), size=9)
        except (OSError, ValueError) as e:
            raise DataNotFound(f"{p}: not a usable font file ({e})") from None
        return p
    names = {"pixeloid": (PIXELOID_FILE, "fonts/pixeloid/v0.5/PixeloidSans.ttf"),
             "gonoto": (GONOTO_FILE, "fonts/gonoto/GoNotoCurrent.ttf")}[which]
    candidates = []
    pkg = _pixar_render_fonts()
    if pkg is not None:
        candidates.append(pkg / names[0])
    d = data_dir(data)
    if d is not None:
        candidates.append(d / names[1])
    for c in candidates:
        if c.is_file():
            return c
    raise DataNotFound(f"{which} font not found (looked in: {[str(c) for c in candidates] or 'nothing'}); "
                       f"install it with: {FONT_INSTALL_HINT}")


def find_font_optional(which: str, data: str | os.PathLike | None = None) -> Path | None:
    try:
        return find_font(which, data=data)
    except DataNotFound:
        return None


def with_fonts(render_cfg, data: str | os.PathLike | None):
    """A copy of a RenderConfig whose unset font paths are resolved against the data folder `data`, so a renderer
    built anywhere (a DataLoader worker, a subprocess) finds the same fonts without any environment variable.
    With data=None the config is returned unchanged (lookup then follows pixar-render / $PIXAR_DATA)."""
    import dataclasses

    if data is None:
        return render_cfg
    font = render_cfg.font or str(find_font("pixeloid", data=data))
    fallback = render_cfg.fallback_font or (str(f) if (f := find_font_optional("gonoto", data)) else None)
    return dataclasses.replace(render_cfg, font=font, fallback_font=fallback)
