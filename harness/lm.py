"""`PixarLM`: PIXAR behind lm-eval's model contract (registered as "pixar").

PIXAR has no tokens, so every lm-eval quantity is defined on pixel positions (one position = 8x16 px):

loglikelihood(context, continuation) -- label: pixel NLL, never token perplexity
    The context is rendered and spaced with PIXAR's `space_text(3)` (exactly 3 white columns before its EOS
    slot: the word space). The continuation, its leading whitespace dropped (lm-eval's word-boundary space
    *is* that spacing), is rendered as its own text starting on the EOS slot, its first ink at column
    `cont_offset` = space advance + 1 - 3 = 1, so the gap between the words is the natural 4 columns.

        context "... sat on the" (left-fitted, spaced)      continuation " mat" (scored)
        [ c_0 ][ c_1 ] ... [ c_{n-1}: "the" + 3 white cols ][ t_0: ".mat.." ][ t_1 ] ... [ t_{k-1} ]  (no EOS)
                                                   column 1 ^ first continuation ink

    The offset is the natural one: a micro model trained 2,500 steps gives LAMBADA targets a mean
    log-likelihood of -149.7 nats at offset 1 against -169 to -171 at offsets 0, 2 and 3.
    Scored: every pixel of t_0..t_{k-1}, where k = the positions holding continuation ink (the white
    columns after the last glyph inside t_{k-1} included; the continuation's own EOS block and any
    all-white position before it excluded -- a token LM scores no end-of-text after a continuation
    either). loglik = sum over those pixels of log Bernoulli(pixel | sigmoid(logit)) in nats, with logit
    t_j predicted from positions < t_j (teacher forcing). A whitespace-only continuation has k = 0:
    (0.0, True). The context is left-trimmed word by word to fit max_positions - k positions; a
    continuation longer than max_positions - 1 is scored in windows as in loglikelihood_rolling.
    Limitation: a continuation that goes on mid-word ("jump" + "ing") is still placed as a new word.
    is_greedy: greedy decoding of k positions from the same context, read back with the OCR engine(s),
    equals the stripped continuation (g -> q folded: the 8-px font draws g and q alike; `union` = either
    engine).

loglikelihood_rolling(text): the text (read as req.args[-1]) is the continuation of an empty context
    (one white position, the rendering of ""), scored in disjoint windows of max_positions: each window
    scores up to max_positions - 1 positions given as much preceding context as fits, every position
    exactly once. Returns a float per request (lm-eval 0.4.x).

generate_until(context, gen_kwargs): greedy (or sampled, seeded) positions after the spaced context,
    stopping at an emitted EOS block; the span before it is read back (no leading space), cut at every
    `until` string (lm-eval leaves that to the model) and to `max_gen_toks` *characters* (generation
    budget: ceil(max_gen_toks / 3.3 chars per position * 1.25) + 1 positions, capped at max_positions - 1).

All three batch through lm-eval's `Collator` (longest first) and return results in input order.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import lm_eval.models  # noqa: F401  -- register the built-in models (hf, ...) before our decorator runs
import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import Collator, handle_stop_sequences, normalize_gen_kwargs
from tqdm import tqdm

from pixar.checkpoint import load_model
from pixar.config import PixarConfig
from pixar.generate import generate
from pixar.model import Pixar, patchify, unpatchify
from pixar.render import Renderer, space_text

log = logging.getLogger(__name__)
CHARS_PER_POSITION = 3.3  # mean of Pixeloid Sans on LAMBADA text (4.9 px per character, 16 px per position)
GEN_MARGIN = 1.25
SPACING = 3  # PIXAR's _spacing_text(3)
OCR_ENGINES = ("glyph", "tesseract", "union")


def fold_gq(text: str) -> str:
    return text.replace("g", "q")


def positions_for_chars(num_chars: int, max_positions: int) -> int:
    """Generation budget in positions for `num_chars` characters (with margin), capped to fit."""
    return max(1, min(math.ceil(num_chars / CHARS_PER_POSITION * GEN_MARGIN) + 1, max_positions - 1))


def left_fit(renderer: Renderer, text: str, budget: int) -> str:
    """The longest suffix of `text`, cut at a word start when possible, whose rendering needs at most
    `budget` positions before its EOS block (at least 1)."""
    cfg, pw = renderer.cfg, renderer.cfg.position_width
    text = renderer.normalise(text)
    limit = max(budget, 1) * pw - cfg.eos_gap - cfg.text_x  # pen advance that still fits
    adv = np.fromiter((renderer.glyph(c).advance for c in text), dtype=np.int64, count=len(text))
    suffix = np.concatenate([np.cumsum(adv[::-1])[::-1], [0]])  # suffix[i] = advance of text[i:]
    if suffix[0] <= limit:
        return text
    first_fit = int(np.argmax(suffix <= limit))  # smallest i whose suffix fits
    for i in range(first_fit, len(text)):
        if i == 0 or text[i - 1] == " ":
            return text[i:].lstrip(" ") if text[i:].strip() else text[first_fit:]
    return text[first_fit:]


def window_plan(n_prefix: int, n_target: int, max_positions: int) -> list[tuple[int, int, int, int]]:
    """Disjoint scoring windows over a sequence of n_prefix context + n_target scored positions.
    Returns (in_start, in_end, score_start, score_end) in absolute indices: the model reads
    [in_start, in_end) (at most max_positions) and scores [score_start, score_end) = the last
    positions of that window; every scored index appears once. Needs n_prefix >= 1."""
    if n_prefix < 1:
        raise ValueError("scoring needs at least one context position")
    plans, a, end = [], n_prefix, n_prefix + n_target
    while a < end:
        b = min(a + max_positions - 1, end)
        plans.append((max(0, b - max_positions), b, a, b))
        a = b
    return plans


@register_model("pixar", "pixar-lm")
class PixarLM(LM):
    def __init__(self, checkpoint: str | None = None, batch_size: int | str = 8, max_batch_size: int = 64,
                 device: str | None = "cpu", ocr: str = "glyph", max_gen_toks: int = 64, seed: int = 0,
                 model: Pixar | None = None, config: PixarConfig | None = None, **kwargs):
        """checkpoint: a PIXAR checkpoint folder (or pass `model` + `config` directly).
        ocr: read-back engine, glyph | tesseract | union (union: is_greedy if either reads the
        continuation; generate_until reads with glyph). max_gen_toks: default character budget."""
        super().__init__()
        if ocr not in OCR_ENGINES:
            raise ValueError(f"ocr must be one of {OCR_ENGINES}, got {ocr!r}")
        if device and str(device).startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %s is not available; using cpu", device)  # lm-eval's CLI defaults to cuda
            device = "cpu"
        self._device = torch.device(device or "cpu")
        if model is None:
            if checkpoint is None:
                raise ValueError("PixarLM needs checkpoint=<folder> (or model= and config=)")
            model, config = load_model(checkpoint, self._device)
        elif config is None:
            raise ValueError("PixarLM(model=...) also needs config=")
        self.model = model.to(self._device).eval()
        self.config = config
        self.checkpoint = str(checkpoint) if checkpoint else None
        self.renderer = Renderer(config.render)
        space = self.renderer.glyph(" ").advance
        self.cont_offset = max(0, space + 1 - SPACING)
        self._cont_renderers: dict[int, Renderer] = {}
        bs = str(batch_size)
        self.batch_size = max_batch_size if bs.startswith("auto") else int(bs)
        self.max_batch_size = int(max_batch_size)
        self.ocr = ocr
        self.max_gen_toks = int(max_gen_toks)
        self.seed = int(seed)
        self._decoder = None  # GlyphDecoder, built on first read
        self._tesseract = None
        self.P = config.render.max_positions
        self.pw = config.render.position_width
        self.H = config.render.patch_size

    # ---- lm-eval metadata ----------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return self.renderer.fingerprint()

    def chat_template(self, chat_template=False) -> str:
        return ""

    def apply_chat_template(self, chat_history, add_generation_prompt=True) -> str:
        return " ".join(m["content"] for m in chat_history)  # a base model: plain concatenation

    def get_model_info(self) -> dict:
        return {"model": "pixar", "checkpoint": self.checkpoint, "params": self.model.num_params(),
                "renderer": self.tokenizer_name, "ocr": self.ocr, "scoring": "pixel NLL (nats)"}

    # ---- rendering -------------------------------------------------------------------------------
    def _engines(self) -> list[str]:
        return ["glyph", "tesseract"] if self.ocr == "union" else [self.ocr]

    def context_positions(self, contexts: list[str], budgets: list[int], chunk: int = 256) -> list[torch.Tensor]:
        """Left-fitted, spaced contexts -> uint8 [n_i, D] positions each (0/1, 1 = white; n_i >= 1, the EOS
        slot excluded). Rendered `chunk` at a time; each result owns its memory."""
        out = []
        for a in range(0, len(contexts), chunk):
            fitted = [left_fit(self.renderer, c, b) for c, b in zip(contexts[a: a + chunk], budgets[a: a + chunk])]
            batch = self.renderer.render_batch(fitted)
            pixels = space_text(batch.pixels, batch.eos_position, self.pw, SPACING)
            pos = patchify(torch.from_numpy(pixels), self.pw)  # uint8 [b, P, D]
            out.extend(pos[i, : int(e)].clone() for i, e in enumerate(batch.eos_position))
        return out

    def _cont_renderer(self, num_chars_px: int) -> Renderer:
        need = max(self.P, math.ceil((num_chars_px + self.cont_offset + 4 * self.pw) / self.pw))
        size = 1 << (need - 1).bit_length()
        if size not in self._cont_renderers:
            cfg = dataclasses.replace(self.config.render, max_positions=size, text_x=self.cont_offset)
            self._cont_renderers[size] = Renderer(cfg)
        return self._cont_renderers[size]

    def continuation_positions(self, text: str) -> torch.Tensor:
        """The continuation (leading whitespace dropped) as its own text: uint8 [k, D], k = positions with ink."""
        text = self.renderer.normalise(text).lstrip()
        width = sum(self.renderer.glyph(c).advance for c in text)
        r = self._cont_renderer(width)
        rendered = r.render(text)
        px = rendered.pixels[0]  # [H, W]
        ink_cols = np.flatnonzero((px[:, : int(rendered.eos_position[0]) * self.pw] == 0).any(axis=0))
        k = int(ink_cols[-1]) // self.pw + 1 if ink_cols.size else 0
        return patchify(torch.from_numpy(px[None]), self.pw)[0, :k].clone()

    def compose(self, prompts: list[str], continuations: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation layout as training data: spaced prompt, the continuation from the EOS slot (as
        scored above), then an EOS block; white padding. -> positions float [B, P, D], mask [B, P]
        (1 up to and including the EOS block). Prompts are left-fitted so everything fits."""
        targets = [self.continuation_positions(c)[: self.P - 2] for c in continuations]
        contexts = self.context_positions(prompts, [self.P - 1 - t.shape[0] for t in targets])
        D = self.H * self.pw
        pos = torch.ones(len(prompts), self.P, D)
        mask = torch.zeros(len(prompts), self.P)
        for i, (c, t) in enumerate(zip(contexts, targets)):
            n = c.shape[0] + t.shape[0]
            pos[i, : c.shape[0]] = c
            pos[i, c.shape[0]: n] = t
            pos[i, n] = 0.0  # EOS block: all ink
            mask[i, : n + 1] = 1
        return pos, mask

    # ---- scoring ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _score_windows(self, jobs: list[tuple[int, torch.Tensor, int, int]], desc: str) -> list[float]:
        """jobs: (request index, input positions uint8 [L, D], score_start, score_end) -> summed log-lik per job."""
        coll = Collator(jobs, sort_fn=lambda j: (-j[1].shape[0], j[0]))
        out = []
        bar = tqdm(total=len(jobs), desc=desc, disable=len(jobs) < 2 * self.batch_size)
        for batch in coll.get_batched(n=self.batch_size):
            L = max(j[1].shape[0] for j in batch)
            seq = torch.ones(len(batch), L, batch[0][1].shape[1])  # right padding: causal, never seen
            for i, j in enumerate(batch):
                seq[i, : j[1].shape[0]] = j[1]
            seq = seq.to(self._device)
            logits = self.model.head(self.model.hidden_states(seq)).float()  # [b, L, D]
            for i, (_, _, s, e) in enumerate(batch):
                nll = F.binary_cross_entropy_with_logits(logits[i, s - 1: e - 1], seq[i, s:e], reduction="sum")
                out.append(-float(nll))
            bar.update(len(batch))
        bar.close()
        return coll.get_original(out)

    def _jobs(self, idx: int, prefix: torch.Tensor, target: torch.Tensor) -> list:
        seq = torch.cat([prefix, target], 0)
        return [(idx, seq[a:b], s - a, e - a) for a, b, s, e in window_plan(prefix.shape[0], target.shape[0], self.P)]

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        args = [tuple(r.args[:2]) for r in requests]
        targets = [self.continuation_positions(cont) for _, cont in args]
        budgets = [max(1, self.P - t.shape[0]) for t in targets]
        contexts = self.context_positions([ctx for ctx, _ in args], budgets)
        jobs = [job for i in range(len(args)) for job in self._jobs(i, contexts[i], targets[i])]
        lls = np.zeros(len(args))
        for (i, *_), ll in zip(jobs, self._score_windows(jobs, "pixar loglikelihood")):
            lls[i] += ll
        greedy = self._is_greedy([cont for _, cont in args], contexts, targets)
        return [(float(lls[i]), bool(greedy[i])) for i in range(len(args))]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        prefix = self.context_positions([""], [1])[0]
        jobs = []
        for i, r in enumerate(requests):
            jobs.extend(self._jobs(i, prefix, self.continuation_positions(r.args[-1])))
        lls = np.zeros(len(requests))
        for (i, *_), ll in zip(jobs, self._score_windows(jobs, "pixar rolling")):
            lls[i] += ll
        return [float(x) for x in lls]

    # ---- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_positions(self, contexts: list[torch.Tensor], num_positions: list[int], *, stop_at_eos: bool,
                           greedy: bool = True, temperature: float = 1.0) -> list[np.ndarray]:
        """Decode num_positions[i] positions after context i ([n_i, D], 0/1); -> uint8 strips [H, m_i*pw]
        of the generated span (an emitted EOS block dropped). Batched longest-first via Collator."""
        items = list(zip(contexts, num_positions))
        coll = Collator(items, sort_fn=lambda it: (-(it[0].shape[0] + it[1]),))
        out = []
        gen = torch.Generator().manual_seed(self.seed)
        for batch in coll.get_batched(n=self.batch_size):
            n_max = max(c.shape[0] for c, _ in batch)
            pos = torch.ones(len(batch), n_max + 1, batch[0][0].shape[1])
            for i, (c, _) in enumerate(batch):
                pos[i, : c.shape[0]] = c
            pixels = unpatchify(pos, self.H).round().to(torch.uint8).numpy()
            eos = np.array([c.shape[0] for c, _ in batch], dtype=np.int64)
            K = max(k for _, k in batch)
            if K == 0:
                out.extend(np.ones((self.H, 0), np.uint8) for _ in batch)
                continue
            res = generate(self.model, pixels, eos, K, mode="greedy" if greedy else "sample",
                           temperature=temperature, generator=gen, stop_at_eos=stop_at_eos, device=self._device)
            for i, (_, k) in enumerate(batch):
                n = min(k, int(res.num_generated[i]))
                if res.stopped_at_eos[i] and int(res.num_generated[i]) <= k:
                    n -= 1  # the EOS block itself is not text
                out.append(res.generated_span(i)[:, : max(n, 0) * self.pw])
        return coll.get_original(out)

    def read(self, strips: list[np.ndarray]) -> dict[str, list[str]]:
        """OCR every strip [H, w] with this adapter's engine(s): {engine: texts} (readers built once)."""
        from pixar import ocr

        engines = self._engines()
        if "glyph" in engines and self._decoder is None:
            from pixar.glyph_decoder import GlyphDecoder

            self._decoder = GlyphDecoder(self.renderer)
        if "tesseract" in engines and self._tesseract is None:
            self._tesseract = ocr.TesseractReader()
        if not strips:
            return {e: [] for e in engines}
        return ocr.read_engines(strips, engines, self.renderer, decoder=self._decoder, tesseract=self._tesseract)

    def _is_greedy(self, continuations: list[str], contexts, targets) -> list[bool]:
        """Greedy k-position decoding from each context reads back as the stripped continuation."""
        result = [t.shape[0] == 0 for t in targets]
        todo = [i for i, t in enumerate(targets) if 0 < t.shape[0] < self.P]
        if todo:
            strips = self.generate_positions([contexts[i] for i in todo], [targets[i].shape[0] for i in todo],
                                             stop_at_eos=False)
            reads = self.read(strips)
            for j, i in enumerate(todo):
                gold = fold_gq(continuations[i].strip())
                result[i] = any(fold_gq(texts[j].strip()) == gold for texts in reads.values())
        return result

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        args = [(r.args[0], r.args[1]) for r in requests]
        coll = Collator(args, sort_fn=lambda a: (-len(a[0]), a[0]), group_fn=lambda a: a[1], group_by="gen_kwargs")
        out = []
        bar = tqdm(total=len(args), desc="pixar generate_until", disable=disable_tqdm or len(args) < 2 * self.batch_size)
        for batch in coll.get_batched(n=self.batch_size):
            kw = normalize_gen_kwargs(dict(batch[0][1]), default_max_gen_toks=self.max_gen_toks)
            until = handle_stop_sequences(kw.get("until"), None)
            max_chars = int(kw["max_gen_toks"])
            n = positions_for_chars(max_chars, self.P)
            contexts = self.context_positions([c for c, _ in batch], [self.P - n] * len(batch))
            sample = bool(kw.get("do_sample")) and float(kw.get("temperature", 0.0)) > 0
            strips = self.generate_positions(contexts, [n] * len(batch), stop_at_eos=True, greedy=not sample,
                                             temperature=float(kw.get("temperature", 1.0)) if sample else 1.0)
            texts = self.read(strips)[self._engines()[0]]
            for text in texts:
                for stop in until:
                    if stop:
                        text = text.split(stop)[0]
                out.append(text[:max_chars])
            bar.update(len(batch))
        bar.close()
        return coll.get_original(out)
