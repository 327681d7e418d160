"""GLUE classifier runners over harness.models.glue_classifiers's PixarClassifier and GPT2Classifier.

The PIXAR classifier accepts a pixel transform: each example's rendered input (pair: both texts, one strip)
is perturbed as `transform(image uint8 [H, W], example_id)` before the backbone reads it.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.models.base import CLASSIFIER_RUNNERS, ClassifierRunner, PixelTransform, check_transform, register
from harness.models.glue_classifiers import build_gpt2_classifier, build_pixar_classifier, classifier_info


@register(CLASSIFIER_RUNNERS, "pixar")
class PixarClassifierRunner(ClassifierRunner):
    meta_kind = "pixar-classifier"
    supports_pixels = True

    @classmethod
    def build(cls, base: str, spec, seed: int, max_tokens: int = 1024) -> "PixarClassifierRunner":
        model = build_pixar_classifier(base, spec, seed)
        return cls(model, str(base), classifier_info(model, spec))

    @property
    def renderer(self):
        return self.model.renderer

    def logits(self, texts: list, transform: PixelTransform | None = None, ids: list[int] | None = None):
        check_transform(self, transform)
        if transform is None:
            return self.model.logits_for(texts)
        pixels, mask, _ = self.model.encode(texts)  # float [B, H, W] in {0, 1}, mask [B, T]
        images = pixels.round().to(torch.uint8).cpu().numpy()
        perturbed = np.stack([np.asarray(transform(images[i], ids[i]), dtype=np.uint8) for i in range(len(texts))])
        return self.model(torch.from_numpy(perturbed).to(pixels.device, torch.float32), mask)

    def describe(self) -> dict:
        return {"renderer": self.model.renderer.fingerprint(), "num_params": self.model.backbone.num_params()}


@register(CLASSIFIER_RUNNERS, "gpt2")
class GPT2ClassifierRunner(ClassifierRunner):
    meta_kind = "gpt2-classifier"
    supports_pixels = False

    @classmethod
    def build(cls, base: str, spec, seed: int, max_tokens: int = 1024) -> "GPT2ClassifierRunner":
        model = build_gpt2_classifier(base, spec, seed, max_tokens)
        return cls(model, str(base), classifier_info(model, spec))

    def logits(self, texts: list, transform: PixelTransform | None = None, ids: list[int] | None = None):
        check_transform(self, transform)
        return self.model.logits_for(texts)

    def describe(self) -> dict:
        return {"num_params": sum(p.numel() for p in self.model.hf.transformer.parameters())}
