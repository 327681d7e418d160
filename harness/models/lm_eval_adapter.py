"""`PixarLM`: PIXAR behind lm-eval's model contract (registered as "pixar"), a thin adapter over the PIXAR
runner (harness.models.PixarRunner), which renders, scores, generates and reads back.

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

The runner is LM_RUNNERS["pixar"] (harness.models.pixar_runner.PixarRunner, registered by the harness.models
package, which Python runs before this module): the runner's lm_eval_model imports this module, not the
other way round.
"""
from __future__ import annotations

import subprocess

import lm_eval.evaluator
import lm_eval.models  # noqa: F401  -- register the built-in models (hf, ...) before our decorator runs
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import Collator, handle_stop_sequences, normalize_gen_kwargs
import torch
from tqdm import tqdm

from pixar.config import PixarConfig
from pixar.errors import PixarError
from pixar.model.transformer import Pixar

from harness.models.base import LM_RUNNERS, OCR_ENGINES, LMRunner
from harness.models.layout import positions_for_chars


class PixarLMArgumentError(PixarError, ValueError):
    """A model argument PixarLM does not take, or a device that is not there (one line)."""


def _git_commit_hash_quietly() -> str | None:
    """lm-eval's get_git_commit_hash without git's `fatal: not a git repository` on stderr."""
    try:
        return subprocess.check_output(["git", "describe", "--always"], stderr=subprocess.DEVNULL).strip().decode()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


lm_eval.evaluator.get_git_commit_hash = _git_commit_hash_quietly  # console noise only; same value

ARGS = ("pretrained", "checkpoint", "batch_size", "max_batch_size", "device", "ocr", "max_gen_toks", "seed")
"""What `--model_args` may name (checkpoint = pretrained, the older spelling)."""


@register_model("pixar", "pixar-lm")
class PixarLM(LM):
    def __init__(self, pretrained: str | None = None, batch_size: int | str | None = 8, max_batch_size: int | None = 64,
                 device: str | None = "cpu", ocr: str = "glyph", max_gen_toks: int = 64, seed: int = 0,
                 model: Pixar | None = None, config: PixarConfig | None = None, runner: LMRunner | None = None,
                 checkpoint: str | None = None, **unknown):
        """pretrained (alias checkpoint): a PIXAR checkpoint or run folder (or pass `model` + `config`, or a
        ready `runner`). ocr: read-back engine, glyph | tesseract | union (union: is_greedy if either reads
        the continuation; generate_until reads with glyph). max_gen_toks: default character budget.
        Any other argument is refused (PixarLMArgumentError, one line): nothing is silently ignored."""
        super().__init__()
        if unknown:
            raise PixarLMArgumentError(f"PixarLM: unknown model argument(s) {', '.join(sorted(unknown))} "
                                       f"(known: {', '.join(ARGS)})")
        if pretrained is not None and checkpoint is not None and str(pretrained) != str(checkpoint):
            raise PixarLMArgumentError("PixarLM: pass pretrained= or its alias checkpoint=, not both")
        checkpoint = pretrained if pretrained is not None else checkpoint
        device = device or "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise PixarLMArgumentError(f"PixarLM: device {device} is not available here (pass --device cpu)")
        if ocr not in OCR_ENGINES:
            raise PixarLMArgumentError(f"PixarLM: ocr must be one of {', '.join(OCR_ENGINES)}, got {ocr!r}")
        batch_size = 8 if batch_size is None else batch_size
        max_batch_size = 64 if max_batch_size is None else max_batch_size
        if runner is None:
            bs = str(batch_size)
            size = int(max_batch_size) if bs.startswith("auto") else int(bs)
            if model is not None:
                if config is None:
                    raise ValueError("PixarLM(model=...) also needs config=")
                runner = LM_RUNNERS["pixar"](model, config, device=device or "cpu", batch_size=size, ocr=ocr, seed=seed,
                                     checkpoint=str(checkpoint) if checkpoint else None)
            elif checkpoint is None:
                raise PixarLMArgumentError("PixarLM needs pretrained=<checkpoint or run folder> (or model= and config=)")
            else:
                runner = LM_RUNNERS["pixar"].load(str(checkpoint), device=device or "cpu", batch_size=size, ocr=ocr,
                                                  seed=seed)
        self.runner = runner
        self._device = runner.device
        self.max_gen_toks = int(max_gen_toks)
        self.batch_sizes = {0: runner.batch_size}  # recorded by lm-eval as the batch size that ran

    # ---- lm-eval metadata ----------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return self.runner.renderer.fingerprint()

    def chat_template(self, chat_template=False) -> str:
        return ""

    def apply_chat_template(self, chat_history, add_generation_prompt=True) -> str:
        return " ".join(m["content"] for m in chat_history)  # a base model: plain concatenation

    def get_model_info(self) -> dict:
        info = {k: self.runner.info[k] for k in ("model", "checkpoint", "params", "renderer", "ocr", "scoring")}
        return {**info, "device_used": str(self.runner.device), "batch_size_used": self.runner.batch_size}

    # ---- requests ------------------------------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self.runner.loglikelihood([tuple(r.args[:2]) for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return self.runner.loglikelihood_rolling([r.args[-1] for r in requests])

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        run, P = self.runner, self.runner.P
        args = [(r.args[0], r.args[1]) for r in requests]
        coll = Collator(args, sort_fn=lambda a: (-len(a[0]), a[0]), group_fn=lambda a: a[1], group_by="gen_kwargs")
        out = []
        bar = tqdm(total=len(args), desc="pixar generate_until",
                   disable=disable_tqdm or len(args) < 2 * run.batch_size)
        for batch in coll.get_batched(n=run.batch_size):
            kw = normalize_gen_kwargs(dict(batch[0][1]), default_max_gen_toks=self.max_gen_toks)
            until = handle_stop_sequences(kw.get("until"), None)
            max_chars = int(kw["max_gen_toks"])
            n = positions_for_chars(max_chars, P)
            contexts = run.context_positions([c for c, _ in batch], [P - n] * len(batch))
            sample = bool(kw.get("do_sample")) and float(kw.get("temperature", 0.0)) > 0
            strips = run.generate_positions(contexts, [n] * len(batch), stop_at_eos=True, greedy=not sample,
                                            temperature=float(kw.get("temperature", 1.0)) if sample else 1.0)
            for text in run.read(strips)[run.engines[0]]:
                for stop in until:
                    if stop:
                        text = text.split(stop)[0]
                out.append(text[:max_chars])
            bar.update(len(batch))
        bar.close()
        return coll.get_original(out)
