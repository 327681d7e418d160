"""The PIXAR runner: rendering, pixel-NLL scoring, generation and OCR read-back, fine-tuning, saving.

Layout (harness.models.layout; the lm-eval semantics are documented in harness.models.lm_eval_adapter):
    context      left-fitted word by word, rendered, spaced with space_text(3): uint8 [n, D] positions, the EOS
                 slot excluded (n >= 1; a pixel transform perturbs the rendered strip before spacing)
    continuation its leading whitespace dropped, rendered from column `cont_offset` of a fresh position:
                 uint8 [k, D], k = positions holding ink
    scoring      teacher-forced logits of the continuation's positions, summed log Bernoulli in nats, in
                 disjoint windows of max_positions (every position scored once)
    generation   greedy (or seeded sampling) positions after the context, read back by the OCR engine(s)
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pixar.checkpoint.store import latest_checkpoint, save_checkpoint
from pixar.config import PixarConfig
from pixar.model.generate import generate
from pixar.model.transformer import Pixar, load_model, patchify, unpatchify
from pixar.read import ocr
from pixar.read.abstention import DEFAULT_RULE as ABSTENTION
from pixar.read.glyph_decoder import GlyphDecoder
from pixar.render.renderer import Renderer, space_text

from harness.models.base import LM_RUNNERS, OCR_ENGINES, LMRunner, OcrReads, PixelTransform, register
from harness.models.finetune import finetune_pixar
from harness.models.layout import SPACING, fold_gq, left_fit, window_plan

log = logging.getLogger(__name__)
GEN_CHUNK = 128  # prompts per generate + read call in the paper protocol


def _short_name(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


@register(LM_RUNNERS, "pixar")
class PixarRunner(LMRunner):
    supports_pixels = True
    lm_eval_keys = {"acc": "lm_eval_acc_ocr", "nll": "lm_eval_pixel_nll", "perplexity": "lm_eval_pixel_ppl"}

    def __init__(self, model: Pixar, config: PixarConfig, *, name: str = "pixar", info: dict | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 16, ocr: str = "glyph", seed: int = 0,
                 checkpoint: str | None = None):
        if ocr not in OCR_ENGINES:
            raise ValueError(f"ocr must be one of {OCR_ENGINES}, got {ocr!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config, self.checkpoint = config, checkpoint
        self.batch_size, self.ocr, self.seed = int(batch_size), ocr, int(seed)
        self._renderer = Renderer(config.render)
        self.cont_offset = max(0, self._renderer.glyph(" ").advance + 1 - SPACING)
        self._cont_renderers: dict[int, Renderer] = {}
        self._decoder = None  # OCR readers, built on first read
        self._tesseracts: dict = {}  # engine -> pixar.read.ocr.TesseractReader
        self.P = config.render.max_positions
        self.pw = config.render.position_width
        self.H = config.render.patch_size
        non_emb = model.num_params() - model.embed.weight.numel() - model.head.weight.numel()
        base = {"model": "pixar", "checkpoint": checkpoint, "params": model.num_params(),
                "renderer": self._renderer.fingerprint(), "ocr": ocr, "scoring": "pixel NLL (nats)",
                "non_embedding_params": non_emb, "name": config.name, "config": config.to_dict(),
                "glyph_abstention": dataclasses.asdict(ABSTENTION)}  # the glyph decoder's rule (pixar.read.abstention)
        super().__init__(name=name, info={**base, **(info or {})})

    @classmethod
    def load(cls, spec: str, *, device: str = "cpu", batch_size: int = 16, ocr: str = "glyph",
             data_dir: str | None = None, seed: int = 0) -> "PixarRunner":
        """A checkpoint folder, or a run folder (its latest checkpoint)."""
        if not (Path(spec) / "model.safetensors").exists() and (Path(spec) / "last").is_file():
            spec = str(latest_checkpoint(spec))
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %s is not available; using cpu", device)  # lm-eval's CLI defaults to cuda
            device = "cpu"
        model, config = load_model(spec, torch.device(device))
        return cls(model, config, name=f"pixar:{_short_name(spec)}", device=device, batch_size=batch_size,
                   ocr=ocr, seed=seed, checkpoint=str(spec))

    @property
    def renderer(self) -> Renderer:
        return self._renderer

    @property
    def engines(self) -> list[str]:
        return ["glyph", "tesseract"] if self.ocr == "union" else [self.ocr]

    # ---- rendering ---------------------------------------------------------------------------------
    def context_positions(self, contexts: list[str], budgets: list[int], chunk: int = 256,
                          transform: PixelTransform | None = None, ids: list[int] | None = None) -> list[torch.Tensor]:
        """Left-fitted, spaced contexts -> uint8 [n_i, D] positions each (0/1, 1 = white; n_i >= 1, the EOS
        slot excluded). `transform(image [H, W], ids[i])` perturbs each rendered context before spacing."""
        ids = list(range(len(contexts))) if ids is None else list(ids)
        out = []
        for a in range(0, len(contexts), chunk):
            fitted = [left_fit(self._renderer, c, b) for c, b in zip(contexts[a: a + chunk], budgets[a: a + chunk])]
            batch = self._renderer.render_batch(fitted)
            pixels = batch.pixels  # uint8 [b, H, W]
            if transform is not None:
                pixels = np.stack([np.asarray(transform(pixels[i], ids[a + i]), dtype=pixels.dtype)
                                   for i in range(len(fitted))])
            pixels = space_text(pixels, batch.eos_position, self.pw, SPACING)
            pos = patchify(torch.from_numpy(np.ascontiguousarray(pixels)), self.pw)  # uint8 [b, P, D]
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
        text = self._renderer.normalise(text).lstrip()
        width = sum(self._renderer.glyph(c).advance for c in text)
        rendered = self._cont_renderer(width).render(text)
        px = rendered.pixels[0]  # [H, W]
        ink_cols = np.flatnonzero((px[:, : int(rendered.eos_position[0]) * self.pw] == 0).any(axis=0))
        k = int(ink_cols[-1]) // self.pw + 1 if ink_cols.size else 0
        return patchify(torch.from_numpy(px[None]), self.pw)[0, :k].clone()

    def compose(self, prompts: list[str], continuations: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation layout as training data: spaced prompt, the continuation from the EOS slot, then an
        EOS block; white padding. -> positions float [B, P, D], mask [B, P] (1 up to and including the EOS
        block). Prompts are left-fitted so everything fits."""
        targets = [self.continuation_positions(c)[: self.P - 2] for c in continuations]
        contexts = self.context_positions(prompts, [self.P - 1 - t.shape[0] for t in targets])
        pos = torch.ones(len(prompts), self.P, self.H * self.pw)
        mask = torch.zeros(len(prompts), self.P)
        for i, (c, t) in enumerate(zip(contexts, targets)):
            n = c.shape[0] + t.shape[0]
            pos[i, : c.shape[0]] = c
            pos[i, c.shape[0]: n] = t
            pos[i, n] = 0.0  # EOS block: all ink
            mask[i, : n + 1] = 1
        return pos, mask

    # ---- scoring -----------------------------------------------------------------------------------
    def jobs(self, idx: int, prefix: torch.Tensor, target: torch.Tensor) -> list:
        """Scoring jobs (idx, input positions uint8 [L, D], score_start, score_end) of prefix + target."""
        seq = torch.cat([prefix, target], 0)
        return [(idx, seq[a:b], s - a, e - a) for a, b, s, e in window_plan(prefix.shape[0], target.shape[0], self.P)]

    @torch.no_grad()
    def score_windows(self, jobs: list, desc: str) -> list[float]:
        """jobs (see `jobs`) -> summed log-likelihood per job, in job order (batched longest first)."""
        from lm_eval.models.utils import Collator

        coll = Collator(jobs, sort_fn=lambda j: (-j[1].shape[0], j[0]))
        out = []
        bar = tqdm(total=len(jobs), desc=desc, disable=len(jobs) < 2 * self.batch_size)
        for batch in coll.get_batched(n=self.batch_size):
            L = max(j[1].shape[0] for j in batch)
            seq = torch.ones(len(batch), L, batch[0][1].shape[1])  # right padding: causal, never seen
            for i, j in enumerate(batch):
                seq[i, : j[1].shape[0]] = j[1]
            seq = seq.to(self.device)
            logits = self.model.head(self.model.hidden_states(seq)).float()  # [b, L, D]
            for i, (_, _, s, e) in enumerate(batch):
                nll = F.binary_cross_entropy_with_logits(logits[i, s - 1: e - 1], seq[i, s:e], reduction="sum")
                out.append(-float(nll))
            bar.update(len(batch))
        bar.close()
        return coll.get_original(out)

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        targets = [self.continuation_positions(cont) for _, cont in requests]
        contexts = self.context_positions([ctx for ctx, _ in requests], [max(1, self.P - t.shape[0]) for t in targets])
        jobs = [job for i in range(len(requests)) for job in self.jobs(i, contexts[i], targets[i])]
        lls = np.zeros(len(requests))
        for (i, *_), ll in zip(jobs, self.score_windows(jobs, "pixar loglikelihood")):
            lls[i] += ll
        greedy = self.is_greedy([cont for _, cont in requests], contexts, targets)
        return [(float(lls[i]), bool(greedy[i])) for i in range(len(requests))]

    def loglikelihood_rolling(self, texts: list[str]) -> list[float]:
        prefix = self.context_positions([""], [1])[0]
        jobs = [job for i, t in enumerate(texts) for job in self.jobs(i, prefix, self.continuation_positions(t))]
        lls = np.zeros(len(texts))
        for (i, *_), ll in zip(jobs, self.score_windows(jobs, "pixar rolling")):
            lls[i] += ll
        return [float(x) for x in lls]

    # ---- generation + read-back --------------------------------------------------------------------
    @torch.no_grad()
    def generate_positions(self, contexts: list[torch.Tensor], num_positions: list[int], *, stop_at_eos: bool,
                           greedy: bool = True, temperature: float = 1.0) -> list[np.ndarray]:
        """Decode num_positions[i] positions after context i ([n_i, D], 0/1); -> uint8 strips [H, m_i*pw]
        of the generated span (an emitted EOS block dropped). Batched longest-first via Collator."""
        from lm_eval.models.utils import Collator

        coll = Collator(list(zip(contexts, num_positions)), sort_fn=lambda it: (-(it[0].shape[0] + it[1]),))
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
                           temperature=temperature, generator=gen, stop_at_eos=stop_at_eos, device=self.device)
            for i, (_, k) in enumerate(batch):
                n = min(k, int(res.num_generated[i]))
                if res.stopped_at_eos[i] and int(res.num_generated[i]) <= k:
                    n -= 1  # the EOS block itself is not text
                out.append(res.generated_span(i)[:, : max(n, 0) * self.pw])
        return coll.get_original(out)

    def read(self, strips: list[np.ndarray], engines: tuple[str, ...] | list[str] | None = None,
             stop_at_eos: bool = True) -> dict[str, list[str]]:
        """OCR every strip [H, w] with `engines` (default: this runner's): {engine: texts} (readers built once)."""
        engines = list(self.engines if engines is None else engines)
        if "glyph" in engines and self._decoder is None:
            self._decoder = GlyphDecoder(self._renderer, abstain=ABSTENTION)
        for e in engines:
            if e != "glyph" and e not in self._tesseracts:
                self._tesseracts[e] = ocr.tesseract_for(e)  # "tesseract" (paper preprocessing), "tesseract-line"
        if not strips:
            return {e: [] for e in engines}
        return {e: ocr.read_strips(strips, e, self._renderer, decoder=self._decoder,
                                   tesseract=self._tesseracts.get(e), stop_at_eos=stop_at_eos)
                for e in engines}

    def is_greedy(self, continuations: list[str], contexts, targets) -> list[bool]:
        """Greedy k-position decoding from each context reads back as the stripped continuation (g->q folded)."""
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

    # ---- paper protocol ----------------------------------------------------------------------------
    def first_words(self, prompts: list[str], n_positions: int, transform: PixelTransform | None = None,
                    ids: list[int] | None = None) -> list[OcrReads]:
        """Greedily generate n_positions positions after each rendered prompt (no EOS stop); read them back."""
        ids = list(range(len(prompts))) if ids is None else list(ids)
        out: list[OcrReads] = []
        for a in tqdm(range(0, len(prompts), GEN_CHUNK), desc=f"paper {self.name}", unit="chunk",
                      disable=len(prompts) <= GEN_CHUNK):
            chunk = prompts[a: a + GEN_CHUNK]
            ctx = self.context_positions(chunk, [self.P - n_positions] * len(chunk), transform=transform,
                                         ids=ids[a: a + GEN_CHUNK])
            reads = self.read(self.generate_positions(ctx, [n_positions] * len(chunk), stop_at_eos=False))
            out += [OcrReads(tuple((e, reads[e][j]) for e in self.engines), int(ctx[j].shape[0]))
                    for j in range(len(chunk))]
        return out

    def protocol_reads(self, spec, prompts: list[str], transform: PixelTransform | None = None,
                       ids: list[int] | None = None):
        """spec.positions greedy positions after each prompt's last `context_budget(spec, P)` positions (spaced
        spec.spacing_px columns), the exact generated span read by every engine of the spec."""
        from harness.eval.protocols import context_budget

        if spec.spacing_px != SPACING:
            raise ValueError(f"{spec.label}: spacing {spec.spacing_px} px, the runner lays out {SPACING} px")
        ids = list(range(len(prompts))) if ids is None else list(ids)
        budget = context_budget(spec, self.P)
        strips, sizes = [], []
        for a in tqdm(range(0, len(prompts), GEN_CHUNK), desc=f"{spec.label} {self.name}", unit="chunk",
                      disable=len(prompts) <= GEN_CHUNK):
            ctx = self.context_positions(prompts[a: a + GEN_CHUNK], [budget] * len(prompts[a: a + GEN_CHUNK]),
                                         transform=transform, ids=ids[a: a + GEN_CHUNK])
            strips += self.generate_positions(ctx, [spec.positions] * len(ctx), stop_at_eos=False)
            sizes += [int(c.shape[0]) for c in ctx]
        return self.read(strips, spec.engines, stop_at_eos=spec.stop_at_eos), spec, sizes

    def paper_row(self, example: dict, reads: OcrReads, readability) -> dict:
        gold, texts = ocr.first_word(example["target"]), reads.texts
        row = {"idx": example["idx"], "target": example["target"], "context_positions": reads.context_positions,
               "read": texts, "first_word": {e: ocr.first_word(t) for e, t in texts.items()},
               "correct": {e: ocr.score_first_word(t, gold) for e, t in texts.items()}}
        if len(texts) > 1:
            row["correct_union"] = ocr.union_correct(texts, gold)
        if readability is not None:
            row["readable"] = readability.is_readable_any(texts.values())
        return row

    def paper_metrics(self, rows: list[dict], readability) -> dict[str, float]:
        n = max(len(rows), 1)
        metrics = {f"paper_acc_{e}": sum(r["correct"][e] for r in rows) / n for e in self.engines}
        if len(self.engines) > 1:
            metrics["paper_acc_union"] = sum(r["correct_union"] for r in rows) / n
        if readability is not None:
            metrics["paper_readability"] = sum(r["readable"] for r in rows) / n
        return metrics

    def paper_metric(self, ocr: str) -> str:
        return f"paper first-word acc (OCR {ocr})"

    def paper_protocol(self, positions: int, ocr: str) -> str:
        rule = "correct if either engine is" if ocr == "union" else "one engine"
        return (f"paper first-word accuracy: {positions} greedy positions read back by OCR ({ocr}; {rule}), "
                "first word vs target, case-sensitive with g->q fold")

    # ---- lm-eval, fine-tuning, saving --------------------------------------------------------------
    def lm_eval_model(self, batch_size: int):
        from harness.models.lm_eval_adapter import PixarLM

        return PixarLM(runner=self)

    def finetune(self, pairs: list[tuple[str, str]], fc) -> "PixarRunner":
        new = PixarRunner(copy.deepcopy(self.model), self.config, name=self.name, info=dict(self.info),
                          device=self.device, batch_size=self.batch_size, ocr=self.ocr, seed=self.seed,
                          checkpoint=self.checkpoint)
        new.finetune_log, new.finetune_summary = finetune_pixar(new, pairs, fc)
        new.finetuned = True
        return new

    def save(self, path: Path, meta: dict) -> Path:
        return save_checkpoint(path, self.model, self.config, meta=meta)
