"""A stand-in for SASRec with its shapes (d = 64), for the scripts in bench/: inside the LLM it
costs what the real one costs, and it needs no trained model."""

from __future__ import annotations

import torch


class RandomSequenceModel:
    def __init__(self, n_items: int, d: int = 64, seed: int = 0) -> None:
        self.table = torch.randn(n_items, d, generator=torch.Generator().manual_seed(seed))

    def encode(self, histories: list[tuple[int, ...]]) -> torch.Tensor:
        return torch.stack([self.table[list(h)].mean(0) for h in histories])

    def item_embeddings(self) -> torch.Tensor:
        return self.table
