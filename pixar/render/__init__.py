"""Text to pixels: the renderer (the authors' PangoCairo pixels, fast), its glyph tables, text rules and the Pillow reference oracle."""
