"""Text in, text out: `generate_text(model, prompt, n)` renders the prompt, continues it for n positions and
reads the continuation back with the glyph decoder (or Tesseract). The lowest layer that has the renderer, the
model's generation and a reader (pixar.read sits above pixar.model and pixar.render; nothing of harness)."""
from __future__ import annotations

import torch

from pixar.model.generate import Generation, generate_from_text
from pixar.model.transformer import Pixar
from pixar.read.glyph_decoder import GlyphDecoder
from pixar.read.ocr import read_strips
from pixar.render.renderer import Renderer


def continue_text(model: Pixar, prompts: list[str], n: int = 8, *, renderer: Renderer | None = None,
                  mode: str = "greedy", temperature: float = 1.0, seed: int = 0, engine: str = "glyph",
                  decoder: GlyphDecoder | None = None) -> tuple[list[str], Generation]:
    """-> (the read-back continuation of each prompt, the Generation with its pixels). `renderer` defaults to
    the one the model was trained with (`model.pixar_config.render`, set by from_pretrained / load)."""
    if renderer is None:
        cfg = getattr(model, "pixar_config", None)
        if cfg is None:
            raise ValueError("generate_text: the model has no pixar_config (load it with Pixar.from_pretrained or "
                             "pass renderer=Renderer(config.render))")
        renderer = Renderer(cfg.render)
    gen = torch.Generator().manual_seed(seed)
    res = generate_from_text(model, renderer, list(prompts), n, mode=mode, temperature=temperature, generator=gen)
    spans = [res.generated_span(i) for i in range(len(prompts))]
    texts = read_strips(spans, engine, renderer, decoder=decoder or (GlyphDecoder(renderer) if engine == "glyph"
                                                                      else None))
    return [t.strip() for t in texts], res


def generate_text(model: Pixar, prompt: str, n: int = 8, **kw) -> str:
    """The prompt's continuation as text: n positions generated (greedy by default; stops at an emitted EOS
    block), read back. Keyword arguments as continue_text (mode="sample", temperature, seed, engine, renderer)."""
    return continue_text(model, [prompt], n, **kw)[0][0]
