"""Both ways of scoring an LLM recommender: greedy generation, and candidate likelihood.

Likelihood: the score of a candidate is log P(" " + title + "\\n" | prompt), the newline
included, so that a title which is a prefix of another ("Heat" / "Heat and Dust") must also
*end* where it ends. The prompt is run once; its key/value cache is repeated for the C
candidates and all C continuations run as one batch against it (`likelihood`), in segments
after which finished rows leave the batch.
`likelihood_uncached` runs each prompt + answer in full; it exists to check the cached path
and to measure its speed-up.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from harness.compat import kv_cache_argument
from harness.progress import Progress
from methods.llm.recommender import LLMRecommender

log = logging.getLogger("ilora_bench")
CACHE = kv_cache_argument()  # 'cache' on transformers >= 5.24, 'past_key_values' before


@torch.no_grad()
def likelihood(
    rec: LLMRecommender, histories: Sequence[tuple[int, ...]], candidates: np.ndarray, batch_size: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """[N, C] log-probabilities of each candidate title as the answer; and the [N, K] gates (or None)."""
    rec.train(False)
    n, c = candidates.shape
    answers = {int(i): rec.answer_ids(int(i)) for i in np.unique(candidates)}
    scores = np.zeros((n, c), dtype=np.float64)
    gates = []
    progress = Progress(n, "likelihood", "sample", log, leave=False)
    for start in range(0, n, batch_size):
        rows = range(start, min(n, start + batch_size))
        batch = rec.collate([rec.encode(histories[i], candidates[i], rec.design.hybrid) for i in rows])
        conts = [answers[int(candidates[i, j])] for i in rows for j in range(c)]
        total, gate = candidate_logp(rec, batch, [tuple(histories[i]) for i in rows], conts, c,
                                     check=f"samples {start}..{rows[-1]}")
        if gate is not None:
            gates.append(gate.float().cpu().numpy())
        b = len(rows)
        scores[start : start + b] = total.double().cpu().numpy()
        progress.update(b)
    progress.close()
    return scores, (np.concatenate(gates) if gates else None)


def candidate_logp(
    rec: LLMRecommender, batch: Any, histories: list[tuple[int, ...]], conts: list[list[int]], c: int,
    check: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[B, C] summed log-probabilities of each prompt's C continuations (`conts`, row-major), from one
    prompt pass whose key/value cache is repeated C times; and the [B, K] gates (or None). Under
    no_grad for scoring; with gradients for training (`training.candidate_loss`). `check` names the
    rows in the error a non-finite score raises (scoring); training checks its loss itself."""
    out, gate = rec.forward(batch, histories, use_cache=True, logits_to_keep=1)
    cache = getattr(out, CACHE)
    cache.batch_repeat_interleave(c)
    rec.set_gate(None if gate is None else gate.repeat_interleave(c, dim=0))
    next_logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1).repeat_interleave(c, dim=0)
    if check and not torch.isfinite(next_logp).all():
        raise FloatingPointError(f"likelihood: non-finite log-probabilities after the prompt pass of {check} "
                                 f"(the prompt, not the candidate titles)")
    total = _continuations(rec, cache, batch.attention_mask.repeat_interleave(c, dim=0), next_logp, conts)
    if check and not torch.isfinite(total).all():
        raise FloatingPointError(f"likelihood: non-finite candidate scores in the continuation pass of {check}")
    return total.view(len(histories), c), gate


SEGMENT = 6  # continuation tokens per pass; ml-100k titles average 5.4 tokens, the longest 23


def _continuations(
    rec: LLMRecommender, cache: Any, prompt_mask: torch.Tensor, next_logp: torch.Tensor, conts: list[list[int]],
) -> torch.Tensor:
    """Sum of log-probabilities of each row's continuation tokens after its cached prompt.

    The continuations run in segments of SEGMENT tokens; after each, rows whose continuation has
    ended leave the batch (and the cache), so short titles do not pay for the longest one's
    padding. `next_logp` [R, V] predicts each row's first token.
    """
    pad = rec.tokenizer.pad_token_id
    lengths = torch.tensor([len(t) for t in conts])
    ids = torch.full((len(conts), int(lengths.max())), pad, dtype=torch.long)
    for k, t in enumerate(conts):
        ids[k, : len(t)] = torch.tensor(t)
    ids, lengths = ids.to(rec.device), lengths.to(rec.device)
    total = torch.zeros(len(conts), device=rec.device)
    active = torch.arange(len(conts), device=rec.device)  # rows still in the batch and the cache
    mask = prompt_mask
    prompt_len = prompt_mask.sum(1, keepdim=True)
    for offset in range(0, ids.shape[1], SEGMENT):
        keep = lengths[active] > offset
        if not keep.all():
            kept = keep.nonzero().squeeze(1)
            cache.batch_select_indices(kept)
            active, mask, next_logp = active[kept], mask[kept], next_logp[kept]
            if rec.gate is not None:
                rec.set_gate(rec.gate.weights[kept])
        seg = ids[active, offset : offset + SEGMENT]
        seg_mask = (torch.arange(offset, offset + seg.shape[1], device=rec.device) < lengths[active, None]).long()
        positions = prompt_len[active] + offset + torch.arange(seg.shape[1], device=rec.device)
        mask = torch.cat([mask, seg_mask], dim=1)
        logits = rec.model(
            input_ids=seg, attention_mask=mask, position_ids=positions, use_cache=True, **{CACHE: cache},
        ).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        token_logp = torch.cat([next_logp.gather(1, seg[:, :1]), logp[:, :-1].gather(2, seg[:, 1:, None]).squeeze(-1)], 1)
        total[active] += (token_logp * seg_mask).sum(1)
        next_logp = logp[:, -1]
    return total


@torch.no_grad()
def likelihood_uncached(
    rec: LLMRecommender, histories: Sequence[tuple[int, ...]], candidates: np.ndarray, batch_size: int,
) -> np.ndarray:
    """The same scores from C separate full prompt + answer passes per sample (reference path)."""
    rec.train(False)
    n, c = candidates.shape
    jobs = [(i, j) for i in range(n) for j in range(c)]
    scores = np.zeros((n, c), dtype=np.float64)
    for start in range(0, len(jobs), batch_size):
        part = jobs[start : start + batch_size]
        rows = [rec.encode(histories[i], candidates[i], rec.design.hybrid, answer=int(candidates[i, j])) for i, j in part]
        batch = rec.collate(rows)
        out, _ = rec.forward(batch, [tuple(histories[i]) for i, _ in part])
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        labels = batch.labels[:, 1:]
        keep = labels >= 0
        token_logp = logp.gather(2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep
        for (i, j), s in zip(part, token_logp.sum(1).double().cpu().numpy()):
            scores[i, j] = s
    return scores


@torch.no_grad()
def generate(
    rec: LLMRecommender, histories: Sequence[tuple[int, ...]], candidates: np.ndarray, batch_size: int,
    max_new_tokens: int,
) -> list[str]:
    """Greedy answers, decoded; a row stops at its first newline or end-of-sequence token, and
    the batch stops when every row has (or after max_new_tokens)."""
    rec.train(False)
    tok = rec.tokenizer
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    answers: list[str] = []
    progress = Progress(len(histories), "generate", "sample", log, leave=False)
    for start in range(0, len(histories), batch_size):
        rows = range(start, min(len(histories), start + batch_size))
        batch = rec.collate([rec.encode(histories[i], candidates[i], rec.design.hybrid) for i in rows])
        out, _ = rec.forward(batch, [tuple(histories[i]) for i in rows], use_cache=True, logits_to_keep=1)
        cache, mask = getattr(out, CACHE), batch.attention_mask
        position = batch.attention_mask.sum(1, keepdim=True)
        generated: list[list[int]] = [[] for _ in rows]
        done = [False] * len(rows)
        next_ids = out.logits[:, -1].argmax(-1)
        for step in range(max_new_tokens):
            for k, t in enumerate(next_ids.tolist()):
                if not done[k]:
                    generated[k].append(t)
                    done[k] = t in eos or "\n" in tok.decode(generated[k][-1:])
            if all(done) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            logits = rec.model(
                input_ids=next_ids.unsqueeze(1), attention_mask=mask, position_ids=position,
                use_cache=True, **{CACHE: cache},
            ).logits
            position = position + 1
            next_ids = logits[:, -1].argmax(-1)
        answers.extend(tok.decode([t for t in g if t not in eos]) for g in generated)
        progress.update(len(rows))
    progress.close()
    return answers
