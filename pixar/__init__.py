"""PIXAR: auto-regressive language modelling in pixel space (Tai et al., ACL Findings 2024)."""
from pixar.config import AdvConfig, ModelConfig, PixarConfig, RenderConfig, TrainConfig
from pixar.model.transformer import Pixar
from pixar.render.renderer import Renderer, RenderedBatch, space_text

__version__ = "0.1.0"
__all__ = ["AdvConfig", "ModelConfig", "Pixar", "PixarConfig", "RenderConfig", "RenderedBatch", "Renderer",
           "TrainConfig", "space_text", "__version__"]
