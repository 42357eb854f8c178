"""A tiny random LLaMA (hidden 32, 2 layers) with a small byte-level BPE tokenizer, and a fake
SASRec, so the LLM methods' machinery is tested in seconds."""

from __future__ import annotations

from pathlib import Path

import torch

TITLES = [
    "Toy Story", "Heat", "Heat and Dust", "The Godfather", "The Godfather: Part II", "Jumanji", "Casino",
    "Sabrina", "Sudden Death", "GoldenEye", "Balto", "Nixon", "Clueless", "Othello", "Now and Then",
    "Persuasion", "Money Train", "Get Shorty", "Copycat", "Assassins", "Powder", "Leaving Las Vegas",
    "Babe", "Dead Man Walking", "Richard III", "Dangerous Minds", "Twelve Monkeys", "Se7en", "Restoration",
    "Mighty Aphrodite",
]


def make_tiny_llm(folder: Path, vocab_size: int = 400) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from methods.llm.prompts import DOMAINS, TEMPLATES

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [t.format(past="", future="", noun="", name="", n=20, history="", candidates="") for t in TEMPLATES]
    corpus += [" ".join(d.values()) for d in DOMAINS.values()] + [" " + t + "\n" for t in TITLES] * 3
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=0,
        eos_token_id=1, bos_token_id=None, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


class FakeSASRec(torch.nn.Module):
    """The ctx.require('sasrec') contract: encode(histories) -> [N, d], item_embeddings() -> [n, d]."""

    def __init__(self, n_items: int, d: int = 16, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.items = torch.nn.Parameter(torch.randn(n_items, d, generator=g), requires_grad=False)
        self.mix = torch.nn.Parameter(torch.randn(d, d, generator=g), requires_grad=False)

    def encode(self, histories: list[tuple[int, ...]]) -> torch.Tensor:
        return torch.stack([torch.tanh(self.items[list(h)].mean(0) @ self.mix) for h in histories])

    def item_embeddings(self) -> torch.Tensor:
        return self.items
