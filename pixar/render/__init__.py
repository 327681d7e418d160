"""Text to pixels: the renderer (the authors' PangoCairo pixels, fast), its glyph tables, line layout, text rules,
shaping for every script, the optional native fast path and the Pillow reference oracle.

`from pixar.render import Renderer` is the public entry (pango-bench and users import it from here)."""
from pixar.render.renderer import RenderedBatch, Renderer

__all__ = ["RenderedBatch", "Renderer"]
