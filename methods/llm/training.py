"""The one training loop of the LLM methods: AdamW, warm-up then cosine, accumulation, curriculum.

Loss: mean cross-entropy over the answer tokens (" " + title + newline) of each micro-batch,
divided by the accumulation steps. Micro-batches are length-bucketed, so padding never costs more
than the batch's longest prompt. For hybrid methods (LLaRA, iLoRA) each optimiser step uses the
hybrid prompt with probability step / total_steps, else the text-only one (upstream's
curriculum; decided here in the one training process, from the run's seed).
A step whose loss or gradient norm is not finite is skipped, as torch.amp's GradScaler skips
them, and named in the log and in `TrainLog.skipped`; past MAX_SKIPPED of the steps training stops
with the steps that failed. Seen on an H100 in bf16 (torch 2.11, transformers 5.17): every LLM
method's gradient norm was NaN at the same optimiser step (40 of 92) with a finite loss; unskipped,
the adapter only surfaced later as NaN scores, with no clue where it began.

Given a checkpoint path, training saves its whole state there (trainable weights, optimiser,
random generators, position, log, best epoch so far) every CHECKPOINT_SECONDS and after each
epoch, and a later call with the same settings resumes from it instead of starting over: a
killed 45-minute CPU training loses minutes, not the run. Resumed training takes the very
steps the uninterrupted one would have (the test checks the weights come out identical).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from harness.compat import training_attention
from harness.data import Sample
from harness.progress import Progress
from methods.llm.batches import IGNORE, length_buckets
from methods.llm.recommender import LLMRecommender
from methods.llm.scoring import candidate_logp

log = logging.getLogger("ilora_bench")


@dataclass(frozen=True)
class TrainItem:
    """A training window with its drawn candidates (the target among them)."""

    history: tuple[int, ...]
    candidates: tuple[int, ...]
    target: int


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int  # micro-batch
    grad_accum: int  # micro-batches per optimiser step
    lr: float
    router_lr_scale: float = 0.3
    warmup_fraction: float = 0.05  # 1/20 of the steps, as upstream
    final_lr_fraction: float = 0.01  # cosine decays to lr / 100
    weight_decay: float = 0.0
    curriculum: bool = False  # hybrid prompt with probability step / total_steps
    seed: int = 0
    max_grad_norm: float | None = None  # clip the global gradient norm (HF Trainer's default is 1.0); None: no clipping
    history_loss: bool = False  # the history titles' tokens carry the loss too (the methods' history_loss option)
    candidate_loss: bool = False  # listwise loss over the window's candidates too (the methods' candidate_loss option)


def lr_factor(step: int, total: int, warmup_fraction: float, final: float) -> float:
    """Linear warm-up to 1, then cosine from 1 down to `final`."""
    warmup = max(1, math.ceil(warmup_fraction * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


MAX_SKIPPED = 0.05  # of the optimiser steps; more non-finite steps than this is a failed training


CHECKPOINT_SECONDS = 120.0  # at most this much training is lost to a kill; a save takes well under a second


@dataclass
class TrainLog:
    losses: list[float]  # per optimiser step taken
    hybrid: list[bool]  # per optimiser step taken: did it use the hybrid prompt
    skipped: list[int] = field(default_factory=list)  # 1-based optimiser steps skipped for a non-finite loss or gradient
    curve: list[float] = field(default_factory=list)  # validation HR@1 after each epoch (with a validate function)
    best_epoch: int | None = None  # the epoch whose weights training returns (with a validate function)
    resumed_at: int | None = None  # optimiser steps already taken when a checkpoint resumed this training


def hybrid_probability(step: int, total: int) -> float:
    """The curriculum: text-only prompts at the start, hybrid ones ever more often, step / total."""
    return step / total


def train(
    rec: LLMRecommender, items: list[TrainItem], cfg: TrainConfig,
    validate: Callable[[int], float] | None = None, checkpoint: Path | None = None,
) -> TrainLog:
    """Train rec's trainable parameters in place; returns the loss and prompt kind of every step.

    `validate(epoch)` returns validation HR@1 after each epoch, and training ends with the weights
    of the best epoch (model selection). `checkpoint`: where to save and resume from (removed once
    training has finished, or has raised: an Optuna-pruned trial or a failed training is not resumed;
    a killed process, or Ctrl-C, leaves it for the next run)."""
    params = rec.trainable()
    router = [p for n, p in params.items() if n.startswith("extra.router.")]
    others = [p for n, p in params.items() if not n.startswith("extra.router.")]
    groups = [{"params": others, "lr": cfg.lr}]
    if router:
        groups.append({"params": router, "lr": cfg.lr * cfg.router_lr_scale})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    torch.manual_seed(cfg.seed)  # LoRA dropout masks
    rng = np.random.default_rng([cfg.seed, 0x4C4C4D])  # batch order
    curriculum_rng = np.random.default_rng([cfg.seed, 0x435552])
    lengths = prompt_lengths(rec, items)
    per_epoch = math.ceil(math.ceil(len(items) / cfg.batch_size) / cfg.grad_accum)
    total = per_epoch * cfg.epochs
    trace = TrainLog([], [])
    best: dict[str, Any] = {"hr1": -math.inf, "state": None}
    step, start_epoch, start_group = 0, 0, 0
    saver = _Checkpoint(checkpoint, _fingerprint(rec, items, cfg, lengths)) if checkpoint is not None else None
    if saver is not None and (state := saver.load()) is not None:
        step, start_epoch, start_group = state["step"], state["epoch"], state["group"]
        _restore(state, params, optimizer, rng, curriculum_rng, rec.device)
        trace, best = TrainLog(**state["trace"]), state["best"]
        trace.resumed_at = step
        log.info("training resumes from %s at optimiser step %d of %d", checkpoint, step, total)
    progress = Progress(total, "train", "step", log, initial=step)

    def snapshot(epoch: int, group: int, epoch_rng: dict[str, Any]) -> None:
        if saver is not None:
            saver.save(_state(step, epoch, group, epoch_rng, params, optimizer, curriculum_rng, trace, best, rec.device))

    try:
        for epoch in range(start_epoch, cfg.epochs):
            rec.train(True)
            epoch_rng = rng.bit_generator.state  # the batch order is drawn from it: a resume redraws the same
            batches = length_buckets(lengths, cfg.batch_size, rng)
            for first in range(start_group if epoch == start_epoch else 0, len(batches), cfg.grad_accum):
                group = batches[first : first + cfg.grad_accum]
                hybrid = rec.design.hybrid and (not cfg.curriculum or curriculum_rng.random() < hybrid_probability(step, total))
                factor = lr_factor(step, total, cfg.warmup_fraction, cfg.final_lr_fraction)
                for g, base in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = base * factor
                step_loss, bad = 0.0, ""
                for idx in group:
                    loss = objective_loss(rec, [items[i] for i in idx], hybrid, history=cfg.history_loss,
                                          candidates=cfg.candidate_loss)
                    if not torch.isfinite(loss):
                        bad = f"loss {loss.item()}"
                        break
                    (loss / len(group)).backward()
                    step_loss += loss.item() / len(group)
                if not bad:
                    # With no max_grad_norm the clip factor is exactly 1: the norm is only read, for the check.
                    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.max_grad_norm or math.inf)
                    bad = "" if torch.isfinite(norm) else f"gradient norm {norm.item()} (loss {step_loss:.4f})"
                if bad:
                    _skip(trace, step, total, epoch, bad, optimizer.param_groups[0]["lr"])
                else:
                    optimizer.step()
                    trace.losses.append(step_loss)
                    trace.hybrid.append(hybrid)
                optimizer.zero_grad(set_to_none=True)
                step += 1
                progress.update(1, f"loss {step_loss:.3f} epoch {epoch + 1} hybrid {int(hybrid)}")
                if saver is not None and saver.due():
                    snapshot(epoch, first + cfg.grad_accum, epoch_rng)
            if validate is not None:
                hr1 = validate(epoch)
                trace.curve.append(hr1)
                if hr1 > best["hr1"]:
                    best = {"hr1": hr1, "epoch": epoch, "state": {k: v.detach().clone() for k, v in params.items()}}
            if epoch + 1 < cfg.epochs:
                snapshot(epoch + 1, 0, rng.bit_generator.state)  # the next epoch's batch order is drawn from here
    except Exception:  # a failed or pruned training is not resumed; only a kill (no exception, or Ctrl-C) keeps it
        if saver is not None:
            saver.remove()
        raise
    progress.close()
    rec.train(False)
    if best["state"] is not None:  # model selection: the epoch with the best validation HR@1
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(best["state"][k])
        trace.best_epoch = best["epoch"]
    if saver is not None:
        saver.remove()
    return trace


def _fingerprint(rec: LLMRecommender, items: list[TrainItem], cfg: TrainConfig, lengths: list[int]) -> str:
    """What a checkpoint must have been trained on to be resumed: the settings, the backbone, the
    design, the very windows, their prompts' token counts (a prompt variant changes them) and the
    trainable tensors' shapes. A work folder is per method and seed, not per parameter set, so
    another run's checkpoint (another --llm, say) may sit there."""
    shapes = [(k, tuple(v.shape)) for k, v in rec.trainable().items()]
    text = repr((asdict(cfg), str(rec.llm), repr(rec.design), rec.item_scale,
                 [(it.history, it.candidates, it.target) for it in items], lengths, shapes))
    return hashlib.sha256(text.encode()).hexdigest()


def _state(step: int, epoch: int, group: int, epoch_rng: dict[str, Any], params: dict[str, torch.Tensor],
           optimizer: torch.optim.Optimizer, curriculum_rng: np.random.Generator, trace: TrainLog,
           best: dict[str, Any], device: Any) -> dict[str, Any]:
    """Everything the loop needs to take the next step exactly as it would have: `group` is the
    index of the next micro-batch group in epoch `epoch`, whose batch order `epoch_rng` redraws."""
    return {
        "step": step, "epoch": epoch, "group": group, "epoch_rng": epoch_rng,
        "curriculum_rng": curriculum_rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if str(device).startswith("cuda") else None,
        "params": {k: v.detach().cpu().clone() for k, v in params.items()},
        "optimizer": optimizer.state_dict(),
        "trace": asdict(trace),
        "best": best,
    }


def _restore(state: dict[str, Any], params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
             rng: np.random.Generator, curriculum_rng: np.random.Generator, device: Any) -> None:
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(state["params"][k])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["epoch_rng"]
    curriculum_rng.bit_generator.state = state["curriculum_rng"]
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and str(device).startswith("cuda"):
        torch.cuda.set_rng_state_all(state["cuda_rng"])


class _Checkpoint:
    """One file, written atomically (a kill while saving leaves the previous checkpoint whole)."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path, self.fingerprint = Path(path), fingerprint
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= CHECKPOINT_SECONDS

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"fingerprint": self.fingerprint, **state}, tmp)
        os.replace(tmp, self.path)
        self.last = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as e:  # a truncated or foreign file: start over rather than fail the run
            log.warning("training checkpoint %s unreadable (%s): training from the start", self.path, e)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.warning("training checkpoint %s is for other settings or windows: training from the start", self.path)
            return None
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _skip(trace: TrainLog, step: int, total: int, epoch: int, what: str, lr: float) -> None:
    """Drop a non-finite step's gradients (the caller zeroes them), or fail past MAX_SKIPPED."""
    trace.skipped.append(step + 1)
    where = f"optimiser step {step + 1} of {total}, epoch {epoch + 1}, lr {lr:.2e}"
    if len(trace.skipped) > max(1, int(MAX_SKIPPED * total)):
        raise FloatingPointError(f"non-finite {what} at {where}; {len(trace.skipped)} steps skipped so far "
                                 f"({trace.skipped[:10]}), more than {MAX_SKIPPED:.0%} of {total}")
    log.warning("non-finite %s at %s: step skipped", what, where)


def answer_loss(
    rec: LLMRecommender, items: list[TrainItem], hybrid: bool, *, all_logits: bool = False, history: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of one micro-batch (the forward pass included).

    Only the logits that predict answer tokens are computed: prompts are left-padded, so every
    answer sits in the batch's last columns, and `logits_to_keep` skips the LM head (a vocabulary-
    wide matmul per position, ~20% of SmolLM2's step and more with Gemma's 262k vocabulary) on the
    prompt. `all_logits=True` computes them all, for the benchmark and the test that the loss is the
    same.

    `history=True` (an ablation, not the papers' objective) also puts the loss on every history
    title's tokens, so that one window trains next-title prediction at each position of its history,
    as SASRec's loss does, instead of at its answer alone; the LM head then runs on exactly the
    labelled positions, wherever they sit."""
    batch = rec.collate([rec.encode(it.history, it.candidates, hybrid, it.target, history_labels=history) for it in items])
    if history:
        with training_attention(rec.device):
            out, _ = rec.forward(batch, [it.history for it in items], logits_to_keep=1, output_hidden_states=True)
        rows, cols = (batch.labels != IGNORE).nonzero(as_tuple=True)  # column 0 is never labelled: a prompt precedes
        logits = rec.lm_logits(out.hidden_states[-1][rows, cols - 1]).float()
        return torch.nn.functional.cross_entropy(logits, batch.labels[rows, cols])
    first = 1 if all_logits else int((batch.labels != IGNORE).any(0).nonzero()[0])  # first labelled column
    with training_attention(rec.device):
        out, _ = rec.forward(batch, [it.history for it in items], logits_to_keep=batch.labels.shape[1] - first + 1)
    logits = out.logits[:, :-1].float()  # positions first-1 .. L-2 predict columns first .. L-1
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels[:, first:].reshape(-1),
                                             ignore_index=IGNORE)


# Negatives per window in the listwise loss. Each scored candidate costs its title's tokens through
# the LM head (Gemma's 262k-word vocabulary dominates): all 19 made a 4-window Gemma micro-batch
# ~20 s against ~4 s for the answer-only loss, too slow for cpu-long; a sampled softmax over 4
# negatives keeps the ranking signal at a fraction of that (bench/llm_levers.py logs the estimate).
CANDIDATE_NEGATIVES = 4


def candidate_loss(
    rec: LLMRecommender, items: list[TrainItem], hybrid: bool, negatives: int | None = CANDIDATE_NEGATIVES,
) -> torch.Tensor:
    """The answer's mean token cross-entropy plus a listwise cross-entropy of the target against
    `negatives` of the window's listed candidates (all of them when None), each scored exactly as
    `scoring.likelihood` scores it at test time (its answer tokens' summed log-probability after the
    prompt, from one cached prompt pass). The negatives are the first non-target ones in the listed
    order, which `training_items` shuffled: a uniform sample, fixed per window.

    An ablation of the papers' objective (the methods' `candidate_loss` option, issue 8): with the
    candidates listed in the prompt, the answer-only loss is mostly paid for copying a listed title,
    and a trained model's first choice follows popularity no better than `pop` does; this loss pays
    for ranking the listed titles against each other, which is what HR@1 measures. The answer part
    is the same number `answer_loss` gives (the answer is tokenised on its own in both)."""
    batch = rec.collate([rec.encode(it.history, it.candidates, hybrid) for it in items])
    others = [[j for j in it.candidates if j != it.target] for it in items]
    scored = [[it.target, *(rest if negatives is None else rest[:negatives])] for it, rest in zip(items, others)]
    n, c = len(items), len(scored[0])
    conts = [rec.answer_ids(j) for row in scored for j in row]
    with training_attention(rec.device):
        total, _ = candidate_logp(rec, batch, [it.history for it in items], conts, c)
    answer = -total[:, 0].sum() / sum(len(conts[k * c]) for k in range(n))
    return answer + torch.nn.functional.cross_entropy(total, torch.zeros(n, dtype=torch.long, device=total.device))


def objective_loss(
    rec: LLMRecommender, items: list[TrainItem], hybrid: bool, *, history: bool = False, candidates: bool = False,
    all_logits: bool = False,
) -> torch.Tensor:
    """The loss the objective options pick, in one place for the training loop and its timing step."""
    if candidates:
        return candidate_loss(rec, items, hybrid)
    return answer_loss(rec, items, hybrid, all_logits=all_logits, history=history)


def prompt_lengths(rec: LLMRecommender, items: list[TrainItem]) -> list[int]:
    """Token count of each text-only training prompt with its answer (what length buckets sort on)."""
    return [len(rec.encode(it.history, it.candidates, False, it.target).ids) for it in items]


def typical_micro_batch(rec: LLMRecommender, items: list[TrainItem], batch_size: int) -> list[TrainItem]:
    """The length-bucketed micro-batch of median padded size, for the up-front time estimate.

    Training runs length-bucketed batches, padded only to their own longest prompt; the first
    `batch_size` items in sample order are padded to the longest of a random few instead (ml-100k,
    Gemma, seed 3: 952 tokens against the buckets' median 712), which made the estimate read ~1.3x
    the training's real time (55.0 min logged for llara's 43.1)."""
    lengths = prompt_lengths(rec, items)
    buckets = length_buckets(lengths, batch_size, np.random.default_rng(0))
    padded = sorted((len(b) * max(lengths[i] for i in b), k) for k, b in enumerate(buckets))
    return [items[i] for i in buckets[padded[len(padded) // 2][1]]]


def cpu_bf16_autocast(on: bool) -> torch.autocast:
    """bf16 autocast for a CPU training (bench/llm_levers.py's `cpu_bf16` knob, timed by bench/llm_bf16.py):
    matmuls in bf16 on CPUs with bf16 instructions, weights and optimiser state fp32.

    The weight cache is off: autocast keeps the bf16 copy it makes of a trainable weight until its
    context exits, and a context spanning every optimiser step would then hide each update from the
    next forward (torch 2.13; tests/test_llm_methods.py's test_cpu_bf16_training_sees_every_update)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on, cache_enabled=False)


def estimate_step_seconds(
    rec: LLMRecommender, items: list[TrainItem], batch_size: int, *, all_logits: bool = False, history: bool = False,
    candidates: bool = False,
) -> float:
    """Seconds for one micro-batch forward + backward on this machine (measured once, then
    the gradients are dropped), for the up-front time estimate and the benchmarks."""
    rec.train(True)
    t0 = time.perf_counter()
    objective_loss(rec, items[:batch_size], False, history=history, candidates=candidates, all_logits=all_logits).backward()
    seconds = time.perf_counter() - t0
    for p in rec.trainable().values():
        p.grad = None
    rec.train(False)
    return seconds


def training_items(
    train: list[Sample], n_items: int, n_candidates: int, budget: int, seed: int
) -> list[TrainItem]:
    """`budget` training windows (0: all) drawn without replacement by the seed, each with
    n_candidates - 1 negatives drawn uniformly from the items outside its history and target,
    then shuffled with the target (upstream's training prompts; fixed here, not re-drawn)."""
    rng = np.random.default_rng([seed, 0x545241])
    order = rng.permutation(len(train))
    chosen = order if not budget else order[: min(budget, len(train))]
    items = []
    for i in sorted(chosen.tolist()):
        s = train[i]
        excluded = set(s.history) | {s.target}
        if n_items - len(excluded) < n_candidates - 1:
            raise ValueError(f"only {n_items - len(excluded)} items are left to draw {n_candidates - 1} negatives from")
        negatives: list[int] = []
        while len(negatives) < n_candidates - 1:
            for item in rng.choice(n_items, size=2 * n_candidates, replace=False).tolist():
                if item not in excluded and item not in negatives and len(negatives) < n_candidates - 1:
                    negatives.append(item)
        cands = np.array([s.target, *negatives])
        items.append(TrainItem(s.history, tuple(int(c) for c in rng.permutation(cands)), s.target))
    return items
