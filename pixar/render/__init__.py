"""Text -> binary pixel strips (pixar.render.renderer; docs/rendering.md)."""
from pixar.render.renderer import RenderedBatch, Renderer

__all__ = ["RenderedBatch", "Renderer"]
