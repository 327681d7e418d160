"""Text to pixels: the renderer (the authors' PangoCairo pixels, fast: pixar.render.renderer.Renderer), its glyph
tables, text rules, shaping for every script, the optional native fast path and the Pillow reference oracle."""
