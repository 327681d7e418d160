"""The official PIXAR architecture and our weights in its layout: a reference for tests (test_convert, test_hub)
and the training-step benchmark (benchmarks/train_step.py puts tests/ on sys.path). Not part of the library:
`pixar convert` (pixar.model.official) needs only the official -> ours direction."""
from __future__ import annotations

import torch
import torch.nn as nn

from pixar.checkpoint.store import CheckpointError
from pixar.config import ModelConfig


class OfficialPixar(nn.Module):
    """The official architecture, built from transformers' LlamaModel (reference for parity tests and
    the training-step benchmark). forward(img [B, 1, 8, W] in [0, 1]) -> logits [B, 1, 8, W]."""

    def __init__(self, llama_config, patch_size: int = 8, patch_len: int = 2):
        super().__init__()
        from transformers import LlamaModel

        self.body = LlamaModel(llama_config)
        self.body.embed_tokens = None
        C, k = llama_config.hidden_size, (patch_size, patch_size * patch_len)
        self.in_proj = nn.Conv2d(1, C, k, stride=k[1], bias=False)
        self.out_proj = nn.ConvTranspose2d(C, 1, k, stride=k[1], bias=False)

    def forward(self, img: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.in_proj(img * 2 - 1).flatten(2).transpose(1, 2)  # [B, T, C]
        h = self.body(inputs_embeds=x, attention_mask=attention_mask).last_hidden_state
        return self.out_proj(h.transpose(1, 2).unsqueeze(2))  # [B, 1, 8, T*16]

    def load_official_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        body = {k: v for k, v in sd.items() if k not in ("in_proj.weight", "out_proj.weight")}
        missing, unexpected = self.body.load_state_dict(body, strict=False)
        if unexpected or [k for k in missing if "embed_tokens" not in k]:
            raise CheckpointError(f"weight names do not match: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            self.in_proj.weight.copy_(sd["in_proj.weight"])
            self.out_proj.weight.copy_(sd["out_proj.weight"])

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """Keys as `LlamaForPatchCausalInference.save_pretrained` writes them."""
        sd = {k: v for k, v in self.body.state_dict().items()}
        sd["in_proj.weight"] = self.in_proj.weight
        sd["out_proj.weight"] = self.out_proj.weight
        return sd


def llama_config_for(mcfg: ModelConfig):
    """The transformers LlamaConfig of the official build of `mcfg` (for parity tests and benchmarks)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=1, hidden_size=mcfg.hidden, intermediate_size=mcfg.ffn, num_hidden_layers=mcfg.layers,
                       num_attention_heads=mcfg.heads, num_key_value_heads=mcfg.heads,
                       max_position_embeddings=mcfg.max_positions, rms_norm_eps=mcfg.norm_eps,
                       rope_theta=mcfg.rope_theta, attn_implementation="sdpa")


def pixar_to_official(state: dict[str, torch.Tensor], mcfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Inverse of `official_to_pixar`: our state dict in the official layout."""
    C, H, pw = mcfg.hidden, mcfg.patch_size, mcfg.patch_size * mcfg.patch_len
    out = {"in_proj.weight": state["embed.weight"].reshape(C, 1, H, pw),
           "out_proj.weight": state["head.weight"].T.reshape(C, 1, H, pw), "norm.weight": state["norm.weight"]}
    names = {"attn_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm", "attn.": "self_attn."}
    for k, v in state.items():
        if k.startswith("blocks."):
            k = "layers." + k[len("blocks."):]
            for a, b in names.items():
                k = k.replace(a, b)
            out[k] = v
    return out
