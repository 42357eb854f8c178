"""LoRA (peft), the gated mixture of LoRA experts (iLoRA), its router, and LLaRA's projector.

The mixture is built on peft's custom-module route: `GatedLoraLinear` is a peft LoRA layer
whose rank-r pair (A: r x in, B: out x r) is read as K experts of rank r/K (rows of A, columns
of B). For a sample with gate g (K weights summing to 1):

    delta(x) = sum_k g_k * B_k A_k dropout(x) * alpha / (r / K)
             = B (w * A dropout(x)) * alpha / (r / K),   w = g repeated r/K times per expert

so iLoRA has exactly plain LoRA's adapter parameters (plus the small router), costs one
element-wise product more per layer, and with K = 1 (g = 1, scaling alpha / r) *is* plain LoRA.
With a uniform gate it equals plain LoRA too, which is how training starts (B = 0 anyway).

The gate is one vector per sample, shared by every adapted layer and every token: the model sets
it once per forward pass on a `GateState` that all layers read. A layer asked to run without a
gate, or with a gate for a different batch size, raises: there is no silent fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import Linear as PeftLoraLinear
from torch import nn

from harness.compat import quiet_peft

# Upstream iLoRA adapts every projection of the LLaMA block; tallrec and llara use the same
# targets here so that the three differ only in what the paper says they differ in.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    targets: tuple[str, ...] = DEFAULT_TARGETS
    experts: int = 0  # 0: plain peft LoRA; K >= 1: GatedLoraLinear with K experts of rank r/K


class GateState:
    """The current batch's gate [B, K], set by the model before a forward pass, read by layers."""

    def __init__(self, experts: int) -> None:
        self.experts = experts
        self.weights: torch.Tensor | None = None

    def set(self, weights: torch.Tensor | None) -> None:
        if weights is not None and (weights.dim() != 2 or weights.shape[1] != self.experts):
            raise ValueError(f"gate must be [batch, {self.experts}], got {tuple(weights.shape)}")
        self.weights = weights

    def rank_weights(self, r: int, batch: int) -> torch.Tensor:
        """[B, 1, r]: each expert's weight repeated over its r/K rank slice."""
        if self.weights is None:
            raise RuntimeError("GatedLoraLinear ran without a gate: set one with GateState.set() first")
        if self.weights.shape[0] != batch:
            raise RuntimeError(f"gate is for a batch of {self.weights.shape[0]}, the layer got {batch}")
        return self.weights.repeat_interleave(r // self.experts, dim=1).unsqueeze(1)


class GatedLoraLinear(PeftLoraLinear):
    """A peft LoRA Linear whose rank slices are experts mixed by a per-sample gate (see module doc)."""

    gate: GateState | None = None  # attached by attach_lora after peft builds the layer

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters or self.merged or kwargs.get("adapter_names") is not None:
            raise NotImplementedError("a per-sample gated LoRA cannot be disabled, merged or mixed per batch")
        if self.gate is None:
            raise RuntimeError("GatedLoraLinear has no GateState attached")
        result = self.base_layer(x, *args, **kwargs)
        result_dtype = result.dtype
        for name in self.active_adapters:
            lora_a, lora_b = self.lora_A[name], self.lora_B[name]
            r = self.r[name]
            scaling = self.lora_alpha[name] / (r / self.gate.experts)
            h = lora_a(self.lora_dropout[name](self._cast_input_dtype(x, lora_a.weight.dtype)))
            h = h * self.gate.rank_weights(r, h.shape[0]).to(h.dtype)
            result = result + lora_b(h) * scaling
        return result.to(result_dtype)

    def merge(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a per-sample gated LoRA cannot be merged into the base weights")


def attach_lora(model: nn.Module, spec: LoraSpec) -> tuple[nn.Module, GateState | None]:
    """Wrap `model` with peft LoRA (experts = 0) or the gated mixture; returns (model, gate state)."""
    if spec.experts and spec.r % spec.experts:
        raise ValueError(f"LoRA rank {spec.r} does not split into {spec.experts} experts of equal rank")
    config = LoraConfig(
        r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=list(spec.targets),
        bias="none", task_type="CAUSAL_LM",
    )
    if spec.experts:
        config._register_custom_module({nn.Linear: GatedLoraLinear})  # experimental peft API, 0.21.2
    with quiet_peft():
        peft_model = get_peft_model(model, config)
    if not spec.experts:
        return peft_model, None
    state = GateState(spec.experts)
    layers = [m for m in peft_model.modules() if isinstance(m, GatedLoraLinear)]
    if not layers:
        raise RuntimeError(f"no layer matched the LoRA targets {spec.targets}")
    for layer in layers:
        layer.gate = state
    return peft_model, state


class Router(nn.Module):
    """Gate logits from a gate-input vector: LayerNorm then Linear, softmax (dense, no top-k).

    Upstream put a BatchNorm here and did not save its running statistics; a LayerNorm has none
    to lose and behaves the same in training and in evaluation.
    """

    def __init__(self, d_in: int, experts: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_in)
        self.linear = nn.Linear(d_in, experts)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(self.norm(s)), dim=-1)


class Projector(nn.Module):
    """LLaRA's projector from the recommender's item embedding space to the LLM's input space."""

    def __init__(self, d_rec: int, d_llm: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_rec, d_llm), nn.GELU(), nn.Linear(d_llm, d_llm))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)
