"""The renderer's optional native fast path: pixar.render._strips, a small C extension built by the project's own
install step (setup.py: `pip install -e .`, `make setup`; optional, so an install without a C compiler still
succeeds). It lays out single-line texts of cached words (Renderer._fast_strip's rules) and writes their pixels
straight into a batch buffer; whatever it does not take goes through the pure-Python path, which draws the same
pixels (tests/test_render_native.py compares the two). Without the extension, or with PIXAR_RENDER_NATIVE=0 in the
environment, every text takes the pure-Python path.

    FILL    the extension's fill(texts, words, cache, space, x0, gap, pw, W, limit, out, eos) -> (todo, chars), or None
    new_cache()  a word cache for FILL (one per renderer: word code units -> its column bytes), or None
"""
from __future__ import annotations

import os
from contextlib import contextmanager

try:
    from pixar.render._strips import fill as _native_fill, new_cache as _new_cache
except ImportError:  # not built (no compiler at install time, or a source tree never installed)
    _native_fill = _new_cache = None

AVAILABLE = _native_fill is not None
FILL = _native_fill if os.environ.get("PIXAR_RENDER_NATIVE", "1") != "0" else None


def new_cache():
    return _new_cache() if _new_cache is not None else None


@contextmanager
def disabled():
    """Within the block every renderer takes the pure-Python path (tests compare the two paths)."""
    global FILL
    saved, FILL = FILL, None
    try:
        yield
    finally:
        FILL = saved
