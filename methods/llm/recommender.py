"""One object per LLM method: the backbone with its adapter, plus LLaRA's projector and iLoRA's router.

`LLMRecommender` knows how to turn samples into prompts, prompts into input embeddings (hybrid
item slots filled with projected SASRec item embeddings), and histories into one gate vector per
sample; scoring.py and training.py only call `forward`.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
from torch import nn

from methods.llm.adapters import GateState, LoraSpec, Projector, Router, attach_lora
from methods.llm.backbone import load_backbone
from methods.llm.batches import Batch, Encoded, collate, encode, piece_tokenizer, title_positions
from methods.llm.prompts import ANSWER_END, answer_text, build_prompt

GATE_INPUTS = ("sequence", "random", "token_mean")
RANDOM_GATE_DIM = 64  # gate_input=random without a sequence model: SASRec's default width


class SequenceEncoder(Protocol):
    """The contract of ctx.require("sasrec"): a frozen sequence model trained on the same split."""

    def encode(self, histories: list[tuple[int, ...]]) -> torch.Tensor: ...  # [N, d]

    def item_embeddings(self) -> torch.Tensor: ...  # [n_items, d], by internal item id


@dataclass(frozen=True)
class Design:
    """What distinguishes the LLM methods; saved beside the adapter weights."""

    lora: LoraSpec | None = None  # None: the backbone as is (zero-shot)
    hybrid: bool = False  # LLaRA's item slots
    gate_input: str = "sequence"  # iLoRA's router input (only with lora.experts >= 1)

    @property
    def gated(self) -> bool:
        return self.lora is not None and self.lora.experts >= 1


class LLMRecommender:
    def __init__(
        self, llm: str, device: str, titles: list[str], domain: str, design: Design,
        sequence_model: SequenceEncoder | None = None, seed: int = 0,
    ) -> None:
        if design.gated and design.gate_input not in GATE_INPUTS:
            raise ValueError(f"gate_input must be one of {GATE_INPUTS}, got {design.gate_input!r}")
        self.llm, self.device, self.titles, self.domain, self.design = llm, device, titles, domain, design
        needs_sequence_model = design.hybrid or (design.gated and design.gate_input == "sequence")
        if needs_sequence_model and sequence_model is None:
            raise ValueError("hybrid prompts and a sequence gate need a sequence model (ctx.require('sasrec'))")
        self.sequence_model = sequence_model
        torch.manual_seed(seed)  # adapter, projector and router initialisation
        model, self.tokenizer = load_backbone(llm, device)
        self.piece_ids = piece_tokenizer(self.tokenizer)
        self.d_llm = model.get_input_embeddings().embedding_dim
        self.gate: GateState | None = None
        if design.lora is not None:
            model, self.gate = attach_lora(model, design.lora)
        self.model = model
        self.extra = nn.ModuleDict()  # projector and router: trained, saved, kept in fp32
        # Multiplies the projected item embeddings. 1.0 is LLaRA's port as is: the projector's output
        # replaces the token embedding as the model sees it. Gemma's embedding module multiplies its
        # weights by sqrt(hidden) (token norm ~26), which inputs_embeds bypass, so its item tokens enter
        # at ~1/10 of a token's norm; `embedding_scale()` is that multiplier (bench/llm_levers.py's
        # projector_scale knob measures whether applying it helps).
        self.item_scale = 1.0
        self.list_candidates = True  # False: prompts.HISTORY_ONLY, bench/llm_levers.py's labelled ablation
        self.item_table: torch.Tensor | None = None
        if sequence_model is not None and needs_sequence_model:
            self.item_table = sequence_model.item_embeddings().detach().float().to(device)
        if design.hybrid:
            assert self.item_table is not None
            self.extra["projector"] = Projector(self.item_table.shape[1], self.d_llm)
        if design.gated:
            d_in = {"sequence": self.item_table.shape[1] if self.item_table is not None else 0,
                    "random": RANDOM_GATE_DIM, "token_mean": self.d_llm}[design.gate_input]
            self.extra["router"] = Router(d_in, design.lora.experts)  # type: ignore[union-attr]
        self.extra.to(device)

    # ------------------------------------------------------------------ prompts and batches

    def encode(
        self, history: tuple[int, ...], candidates: Sequence[int], hybrid: bool, answer: int | None = None,
        history_labels: bool = False,
    ) -> Encoded:
        """`history_labels`: the history titles' tokens carry the loss too (a training ablation)."""
        pieces = build_prompt(tuple(history), tuple(int(c) for c in candidates), self.titles, self.domain, hybrid,
                              self.list_candidates)
        enc = encode(self.piece_ids, self.tokenizer.pad_token_id, pieces,
                     None if answer is None else answer_text(self.titles[answer]))
        if history_labels:
            titles = [self.piece_ids(answer_text(self.titles[i]).removesuffix(ANSWER_END), False) for i in history]
            enc.extra_labels = title_positions(enc.ids, titles, enc.answer_start)
        return enc

    def answer_ids(self, item: int) -> list[int]:
        """The token ids of `item`'s title written as an answer: what likelihood scoring sums the
        log-probabilities of, at test time and in the listwise training loss alike."""
        return list(self.piece_ids(answer_text(self.titles[item]), False))

    def collate(self, rows: list[Encoded]) -> Batch:
        return collate(rows, self.tokenizer.pad_token_id).to(self.device)

    # ------------------------------------------------------------------ forward

    def embed(self, batch: Batch) -> torch.Tensor:
        """Token embeddings, with each item slot's replaced by the projected item embedding."""
        embeds = self.model.get_input_embeddings()(batch.input_ids)
        if len(batch.slot_items):
            if "projector" not in self.extra:
                raise RuntimeError("a hybrid prompt reached a model without a projector")
            values = (self.extra["projector"](self.item_table[batch.slot_items]) * self.item_scale).to(embeds.dtype)
            embeds = embeds.index_put((batch.slot_rows, batch.slot_cols), values)
        return embeds

    def embedding_scale(self) -> float:
        """The factor the backbone's embedding module applies to its own weights (Gemma: sqrt(hidden);
        1.0 for Llama-family models like SmolLM2), measured rather than read from a model-specific attribute."""
        embed = self.model.get_input_embeddings()
        ids = torch.arange(min(embed.num_embeddings, 1024), device=self.device)
        with torch.no_grad():
            seen = embed(ids).float().norm(dim=-1)
            raw = embed.weight[ids].float().norm(dim=-1)
        return float((seen / raw.clamp_min(1e-12)).median())

    def gates(self, histories: list[tuple[int, ...]], batch: Batch, embeds: torch.Tensor) -> torch.Tensor | None:
        """[B, K] gate weights, one vector per sample (None for methods without a gate)."""
        if not self.design.gated:
            return None
        kind = self.design.gate_input
        if kind == "sequence":
            with torch.no_grad():
                s = self.sequence_model.encode(list(histories)).detach().float().to(self.device)  # type: ignore[union-attr]
        elif kind == "random":  # a fixed random vector per history: reproducible, carries nothing
            s = torch.stack([
                torch.randn(RANDOM_GATE_DIM, generator=torch.Generator().manual_seed(zlib.crc32(repr(tuple(h)).encode())))
                for h in histories
            ]).to(self.device)
        else:  # token_mean: the mean input embedding of the prompt's real tokens
            m = batch.attention_mask.unsqueeze(-1).to(embeds.dtype)
            s = ((embeds * m).sum(1) / m.sum(1)).detach().float()
        return self.extra["router"](s)

    def forward(
        self, batch: Batch, histories: list[tuple[int, ...]], *, use_cache: bool = False, logits_to_keep: int = 0,
        output_hidden_states: bool = False,
    ) -> tuple[Any, torch.Tensor | None]:
        """Run the prompt batch; returns (model output, gate weights used)."""
        embeds = self.embed(batch)
        gate = self.gates(histories, batch, embeds)
        self.set_gate(gate)
        out = self.model(
            inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
            use_cache=use_cache, logits_to_keep=logits_to_keep, output_hidden_states=output_hidden_states,
        )
        return out, gate

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The backbone's logits for final hidden states picked anywhere in a batch (not only its last
        columns, which is all `logits_to_keep` can skip to): its LM head, and the final soft cap of
        the models that have one (Gemma 2; Gemma 3 sets none)."""
        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def set_gate(self, gate: torch.Tensor | None) -> None:
        if self.gate is not None:
            self.gate.set(gate)

    # ------------------------------------------------------------------ parameters and state

    def trainable(self) -> dict[str, nn.Parameter]:
        params = {f"model.{n}": p for n, p in self.model.named_parameters() if p.requires_grad}
        params.update({f"extra.{n}": p for n, p in self.extra.named_parameters()})
        return params

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.trainable().values())

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)
        self.extra.train(mode)

    def save(self, folder: Path) -> None:
        """Adapter, projector and router weights (safetensors) and the design (JSON)."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.trainable().items()}, str(folder / "adapter.safetensors"))
        (folder / "design.json").write_text(json.dumps(asdict(self.design), indent=1) + "\n")

    def load(self, folder: Path) -> None:
        """Restore save()'s weights into a recommender built with the same design; every
        trainable tensor must be present, and nothing else."""
        from safetensors.torch import load_file

        saved = json.loads((folder / "design.json").read_text())
        if saved != json.loads(json.dumps(asdict(self.design))):
            raise ValueError(f"{folder}: saved design {saved} differs from this model's {asdict(self.design)}")
        tensors = load_file(str(folder / "adapter.safetensors"))
        params = self.trainable()
        if set(tensors) != set(params):
            missing, unexpected = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
            raise ValueError(f"{folder}: adapter keys differ (missing {missing[:3]}, unexpected {unexpected[:3]})")
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(tensors[k])
