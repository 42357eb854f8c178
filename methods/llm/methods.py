"""The LLM methods: llm-zeroshot, tallrec, llara, ilora (registration and parameters only).

Everything heavy (torch, transformers, peft) is imported inside the methods, so that
`run_bench.py --list` stays light. All four share one backbone loader, one prompt builder, one
training loop and one pair of scorers; they differ only in their `Design`:

    llm-zeroshot  backbone as is
    tallrec       + LoRA (rank 8 on q,k,v,o,gate,up,down), title-only prompts
    llara         + LLaRA's hybrid item slots (projected SASRec item embeddings), curriculum
    ilora         + LoRA replaced by K gated LoRA experts (gate from the SASRec sequence representation)

Profiles: parameters left at None take the value of the chosen `profile` (`resolve`, so run
records show the values used and their hash changes with the preset). "cpu" (default) is a
smoke-scale budget that keeps `--methods all` on ml-100k under 30 minutes on 2 cores (24 min
measured); "cpu-long" takes 10x its windows for a ~2-hour run (issue 8); "paper"
carries upstream's GPU settings (5 epochs over every training window, effective batch 128,
warm-up 1/20 then cosine to lr/100, validation each epoch for model selection).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.data import Sample
from harness.errors import UserError
from harness.protocol import EvalSet
from harness.report.stats import gate_spread
from methods.base import METHODS, Method
from methods.llm.backbone import SHIPPED, package_dir

log = logging.getLogger("ilora_bench")

PROFILES: dict[str, dict[str, Any]] = {
    "cpu": {
        "train_samples": 160, "epochs": 1, "batch_size": 4, "grad_accum": 2, "lr": 5e-4,
        "validate": False, "max_new_tokens": 32, "score_batch": 4,
    },
    # Issue 8's longer CPU budget (<= 3 h for --methods all on ml-100k, 2 cores): 10x the windows of
    # `cpu`, twice its learning rate (bench/llm_levers.py measured what more windows and steps buy).
    "cpu-long": {
        "train_samples": 1600, "epochs": 1, "batch_size": 4, "grad_accum": 2, "lr": 1e-3,
        "validate": False, "max_new_tokens": 32, "score_batch": 4,
    },
    "paper": {
        "train_samples": 0, "epochs": 5, "batch_size": 8, "grad_accum": 16, "lr": 5e-4,
        "validate": True, "max_new_tokens": 64, "score_batch": 16,
        "max_grad_norm": 1.0,  # TALLRec trains with HF Trainer, whose default clips at 1.0; the CPU profiles do not clip
    },
}

# Training seconds per window and scoring minutes (95 test samples, both modes) on 2 idle CPU cores with
# ml-100k prompts (~200 tokens), per shipped backbone; for the plan line only. SmolLM2: llara trained 480
# windows in 600 s (bench/llm_levers.py's llara-480-constant) once training computed logits for the answer
# only; scoring ~3 min. Gemma-3-270M: llara-cpu-long-gemma trained 1600 windows in 29.0 min (1.09 s each;
# llara-480-gemma 1.16 s); the cpu-long Gemma run scored in 3.0-4.6 min. A local model's cost is unmeasured.
CPU_COST: dict[str, tuple[float, float]] = {"smollm2": (1.25, 3.0), "gemma3-270m": (1.1, 4.0)}


def _cpu_cost(settings: dict[str, Any]) -> tuple[float, float] | None:
    """(training seconds per window, scoring minutes) for the backbone, None for an unmeasured local model."""
    return CPU_COST.get(str(settings["llm"]))


def _train_minutes_cpu(settings: dict[str, Any], cost: tuple[float, float]) -> float | None:
    """Training minutes on 2 CPU cores at `cost`; None when it trains every window (no CPU budget)."""
    if not settings["train_samples"]:
        return None
    factor = next((cost_factor for option, (_, cost_factor) in OBJECTIVE_OPTIONS.items() if settings.get(option)), 1.0)
    if settings.get("prompt") == "history-only":
        factor *= HISTORY_ONLY_COST
    return settings["train_samples"] * settings["epochs"] * cost[0] * factor / 60


def resolve_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters with None replaced by the chosen profile's value."""
    profile = params["profile"]
    if profile not in PROFILES:
        raise UserError(f"unknown LLM profile {profile!r}; known: {', '.join(PROFILES)}")
    return {k: (PROFILES[profile][k] if v is None and k in PROFILES[profile] else v) for k, v in params.items()}


# "paper" is the papers' prompt (history and the candidate list); "history-only" leaves the candidates out of the
# text (prompts.HISTORY_ONLY), a labelled ablation: the issue-8 levers found it trains better on 2 CPU cores.
PROMPTS = ("paper", "history-only")
SCORING_DEFAULTS: dict[str, Any] = {
    "llm": "smollm2", "profile": "cpu", "max_new_tokens": None, "score_batch": None,
    "prompt": "paper",  # recorded only when not "paper" (`resolve`), so older records keep their hashes
}
TRAINING_DEFAULTS: dict[str, Any] = {
    **SCORING_DEFAULTS,
    "train_samples": None,  # training windows drawn (deterministically, by seed) from the split; 0 = all
    "epochs": None, "batch_size": None, "grad_accum": None, "lr": None, "validate": None,
    "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1,
    "lora_targets": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    # The loss on the history titles' tokens as well as the answer's: a window's history holds ten more
    # next-item events that SASRec trains on and the papers' answer-only loss ignores. Off = the papers'
    # objective. Recorded only when on (`resolve`), so records from before the option keep their hashes.
    "history_loss": False,
    # A listwise loss over the window's listed candidates as well as the answer's (training.candidate_loss):
    # pays for ranking the listed titles, not only for writing one. Off = the papers' objective, recorded
    # only when on, as history_loss.
    "candidate_loss": False,
}
# Each objective option: its words in the plan line, and its training time against the papers' loss on 2 CPU
# cores. history_loss runs the LM head on ~10x the positions: 24.2 against 17.7 min for the same 1600 Gemma
# windows (the levers table, bench/LEVERS.md, ilora-1600-histonly with and without it). candidate_loss runs it on the title
# tokens of 5 candidates per window: 46.3 against 29.0 min for llara's 1600 cpu-long Gemma windows (same AMD EPYC).
# The history-only prompt drops the 20 listed titles, about half the tokens: 1600 Gemma windows with the history
# loss trained in 17.7-22.1 min on the AMD EPYC (bench/llm_levers.py's *-1600-histonly-histloss-* rows, seeds 1-2),
# where the paper's prompt with it would take 1600 x 1.1 x 1.4 s = 41 min.
HISTORY_ONLY_COST = 0.5
OBJECTIVE_OPTIONS: dict[str, tuple[str, float]] = {
    "history_loss": ("loss on the history titles too", 1.4),
    "candidate_loss": ("listwise loss over the candidates too", 1.6),
}


class LLMMethod(Method):
    """Shared fit / choose / score of the LLM family; subclasses say what they are via `design()`."""

    modes: ClassVar = {"generate": "choose", "likelihood": "score"}
    order_sensitive: ClassVar[bool] = True  # the candidates are listed in the prompt
    defaults: ClassVar[dict[str, Any]] = SCORING_DEFAULTS
    trains: ClassVar[bool] = False

    def __init__(self, ctx: Any, **params: Any) -> None:
        super().__init__(ctx, **params)
        self.settings = resolve_settings(self.params)  # the runner passes resolved ones; tests may not
        self._rec: Any = None
        self._extra: dict[str, Any] = {}

    @classmethod
    def resolve(cls, params: dict[str, Any]) -> dict[str, Any]:
        settings = resolve_settings(params)
        if settings.get("prompt", "paper") not in PROMPTS:
            raise UserError(f"{cls.__name__.lower()}: prompt={settings['prompt']!r}; known: {', '.join(PROMPTS)}")
        if settings.get("prompt") == "paper":
            del settings["prompt"]
        for option in OBJECTIVE_OPTIONS:
            if option in settings:
                if not isinstance(settings[option], bool):
                    raise UserError(f"{cls.__name__.lower()}: {option}={settings[option]!r} must be true or false")
                if not settings[option]:
                    del settings[option]  # the papers' objective, recorded as before the option existed
        if settings.get("history_loss") and settings.get("candidate_loss"):
            raise UserError(f"{cls.__name__.lower()}: history_loss and candidate_loss are separate ablations; set one")
        llm = str(settings["llm"])
        if llm in SHIPPED:
            package_dir(llm)  # its wheel is installed, or a one-line error before any run starts
        elif not (Path(llm).expanduser() / "config.json").exists():
            # Checked before any run starts, so a mistyped path is a one-line error, not a failed run.
            raise UserError(f"{cls.__name__.lower()}: llm={llm!r} is not one of {', '.join(SHIPPED)} and not a local "
                            f"Hugging Face model folder (no config.json there)")
        return settings

    @classmethod
    def estimate_minutes(cls, params: dict[str, Any]) -> float | None:
        """None where no CPU estimate exists (every window, or a local model): the plan then prints no total."""
        settings = resolve_settings(params)
        cost = _cpu_cost(settings)
        if cost is None:
            return None
        if not cls.trains:
            return cost[1]
        minutes = _train_minutes_cpu(settings, cost)
        return None if minutes is None else minutes + cost[1]

    @classmethod
    def plan(cls, params: dict[str, Any]) -> str | None:
        s = resolve_settings(params)
        scoring = (f"scores the test set by greedy generation (<= {s['max_new_tokens']} new tokens) and by "
                   f"likelihood of all candidates")
        cost = _cpu_cost(s)
        where = f"on 2 CPU cores with {s['llm']}"
        if cls.trains and not s["train_samples"]:
            estimate = "a GPU-sized budget"
        elif cost is None:
            estimate = "no CPU estimate for a local model"
        elif not cls.trains:
            estimate = f"~{cost[1]:.0f} min {where}"
        else:
            estimate = f"~{_train_minutes_cpu(s, cost):.0f} min training + ~{cost[1]:.0f} min scoring {where}"
        prompt = ", the history-only prompt (an ablation: no candidate list)" if s.get("prompt") == "history-only" else ""
        if not cls.trains:
            return f"on {s['llm']}{prompt}: {scoring}; {estimate}"
        budget = "every training window" if not s["train_samples"] else f"{s['train_samples']} sampled training windows"
        objective = "".join(f", {words}" for option, (words, _) in OBJECTIVE_OPTIONS.items() if s.get(option))
        return (f"on {s['llm']} (profile {s['profile']}{prompt}{objective}): trains {budget} x {s['epochs']} epoch(s), batch "
                f"{s['batch_size']} x {s['grad_accum']} accumulated, then {scoring}; {estimate}")

    # ------------------------------------------------------------------ what the method is

    def design(self) -> Any:
        from methods.llm.recommender import Design

        return Design()

    def sequence_model(self) -> Any:
        """The SASRec trained on this split and seed, when the design needs one."""
        design = self.design()
        if design.hybrid or (design.gated and design.gate_input == "sequence"):
            if self.ctx.require is None:
                raise UserError(f"{type(self).__name__} needs a SASRec (ctx.require) and none is available here")
            return self.ctx.require("sasrec")
        return None

    def recommender(self) -> Any:
        if self._rec is None:
            from methods.llm.prompts import domain_for
            from methods.llm.recommender import LLMRecommender

            t0 = time.perf_counter()
            self._rec = LLMRecommender(
                self.settings["llm"], self.ctx.device, self.ctx.titles, domain_for(self.ctx.dataset), self.design(),
                self.sequence_model(), seed=self.ctx.seed,
            )
            self._extra["load_seconds"] = round(time.perf_counter() - t0, 2)
            if self.settings.get("projector_scale") == "embedding":  # bench/llm_levers.py's knob
                self._rec.item_scale = self._rec.embedding_scale()
                self._extra["item_scale"] = round(self._rec.item_scale, 4)
            if self.settings.get("prompt") == "history-only":  # the labelled ablation (PROMPTS)
                self._rec.list_candidates = False
                self._extra["prompt"] = "history-only"
        return self._rec

    # ------------------------------------------------------------------ the Method interface

    def fit(self, train: list[Sample], valid: EvalSet) -> None:
        rec = self.recommender()
        if self.trains:
            with self._training_precision():
                self._train(rec, train, valid)

    def _training_precision(self) -> Any:
        """bench/llm_levers.py's `cpu_bf16` knob (issue 8's throughput lever): the training under bf16
        autocast on a CPU; scoring stays fp32, so rows compare on the same scoring."""
        from methods.llm.training import cpu_bf16_autocast

        on = bool(self.settings.get("cpu_bf16")) and not str(self.ctx.device).startswith("cuda")
        if on:
            self._extra["train_autocast"] = "bfloat16"
        return cpu_bf16_autocast(on)

    def choose(self, samples: EvalSet) -> tuple[np.ndarray, list[str]]:
        from methods.llm.answers import match_answer, upstream_match
        from methods.llm.scoring import generate

        answers = generate(
            self.recommender(), samples.histories, samples.candidates, self.settings["score_batch"],
            self.settings["max_new_tokens"],
        )
        titles = [[self.ctx.titles[int(i)] for i in row] for row in samples.candidates]
        choices = np.array([match_answer(a, t) for a, t in zip(answers, titles)], dtype=np.int64)
        upstream = np.array([upstream_match(a, t) for a, t in zip(answers, titles)], dtype=np.int64)
        self._extra.update(
            llara_hr1=float(np.mean(upstream == samples.target_index)),
            llara_valid_ratio=float(np.mean(upstream >= 0)),
        )
        return choices, answers

    def score(self, samples: EvalSet) -> np.ndarray:
        from methods.llm.scoring import likelihood

        scores, gates = likelihood(self.recommender(), samples.histories, samples.candidates, self.settings["score_batch"])
        if gates is not None:
            self._extra.update(
                test_gates=np.round(gates, 5).tolist(),
                gate_mean=np.round(gates.mean(0), 5).tolist(),
                gate_entropy_mean=gate_spread(gates)[0],
            )
        return scores

    def trainable_parameters(self) -> int:
        return self.recommender().trainable_count() if self.trains else 0

    def record_extra(self) -> dict[str, Any]:
        return self._extra

    # ------------------------------------------------------------------ training

    def _train(self, rec: Any, train: list[Sample], valid: EvalSet) -> None:
        from methods.llm.scoring import likelihood
        from methods.llm.training import (
            TrainConfig, estimate_step_seconds, train as train_loop, training_items, typical_micro_batch,
        )

        s = self.settings
        items = training_items(train, self.ctx.n_items, valid.candidates.shape[1], s["train_samples"], self.ctx.seed)
        cfg = TrainConfig(
            epochs=s["epochs"], batch_size=s["batch_size"], grad_accum=s["grad_accum"], lr=s["lr"],
            router_lr_scale=s.get("router_lr_scale", 0.3), seed=self.ctx.seed,
            curriculum=rec.design.hybrid and s.get("curriculum", True),  # bench/llm_levers.py may switch it off
            max_grad_norm=PROFILES[s["profile"]].get("max_grad_norm"),
            history_loss=s["history_loss"], candidate_loss=s["candidate_loss"],
            **{k: s[k] for k in ("warmup_fraction", "final_lr_fraction") if k in s},  # bench/llm_levers.py's knobs
        )
        micro = -(-len(items) // cfg.batch_size)
        steps = -(-micro // cfg.grad_accum) * cfg.epochs
        typical = typical_micro_batch(rec, items, cfg.batch_size)
        estimate_step_seconds(rec, typical, cfg.batch_size)  # the first call carries one-off costs (about 2x on Gemma)
        per_micro = estimate_step_seconds(rec, typical, cfg.batch_size, history=cfg.history_loss, candidates=cfg.candidate_loss)
        log.info(
            "%s: training %d samples (of %d windows) x %d epoch(s) = %d optimiser steps of %d x %d; "
            "one micro-batch takes ~%.1f s here, so ~%.1f min of training%s",
            type(self).__name__, len(items), len(train), cfg.epochs, steps, cfg.batch_size, cfg.grad_accum,
            per_micro, per_micro * micro * cfg.epochs / 60, ", validating each epoch" if s["validate"] else "",
        )

        def validate(epoch: int) -> float:
            scores, _ = likelihood(rec, valid.histories, valid.candidates, s["score_batch"])
            hr1 = float(np.mean(scores.argmax(1) == valid.target_index))
            if self.ctx.report is not None:
                self.ctx.report(epoch, hr1)
            return hr1

        t0 = time.perf_counter()
        # A killed run resumes its training from this checkpoint (methods.llm.training; removed once trained).
        trained = train_loop(rec, items, cfg, validate if s["validate"] else None,
                             checkpoint=Path(self.ctx.work_dir) / "train_checkpoint.pt")
        losses = trained.losses
        rec.save(Path(self.ctx.work_dir) / "adapter")
        self._extra.update(
            train_samples=len(items), train_steps=len(losses), train_seconds=round(time.perf_counter() - t0, 1),
            loss_first=round(losses[0], 4) if losses else None, loss_last=round(losses[-1], 4) if losses else None,
            losses=[round(x, 4) for x in losses], skipped_steps=trained.skipped, valid_hr1_curve=trained.curve,
            best_epoch=trained.best_epoch, resumed_at_step=trained.resumed_at,  # train_seconds: this process's share
            adapter=str(Path(self.ctx.work_dir) / "adapter"),
            hybrid_steps="".join("h" if h else "t" for h in trained.hybrid) if rec.design.hybrid else None,
        )


@METHODS.register("llm-zeroshot", "the LLM backbone untuned (SmolLM2-135M by default), scored by generation and likelihood")
class ZeroShot(LLMMethod):
    pass


@METHODS.register("tallrec", "TALLRec-style LoRA fine-tuning (rank 8) on the title-only 20-candidate prompt")
class TALLRec(LLMMethod):
    defaults: ClassVar[dict[str, Any]] = TRAINING_DEFAULTS
    trains: ClassVar[bool] = True

    def lora_spec(self, experts: int = 0) -> Any:
        from methods.llm.adapters import LoraSpec

        targets = tuple(t.strip() for t in str(self.settings["lora_targets"]).split(",") if t.strip())
        return LoraSpec(int(self.settings["lora_r"]), float(self.settings["lora_alpha"]),
                        float(self.settings["lora_dropout"]), targets, experts)

    def design(self) -> Any:
        from methods.llm.recommender import Design

        return Design(lora=self.lora_spec())


@METHODS.register("llara", "LLaRA: LoRA + hybrid item tokens (projected SASRec item embeddings), text-to-hybrid curriculum")
class LLaRA(TALLRec):
    def design(self) -> Any:
        from methods.llm.recommender import Design

        return Design(lora=self.lora_spec(), hybrid=True)


@METHODS.register("ilora", "iLoRA: LLaRA with K LoRA experts mixed per sample by a gate from the SASRec sequence representation")
class ILoRA(TALLRec):
    defaults: ClassVar[dict[str, Any]] = {
        **TRAINING_DEFAULTS,
        "experts": 4,  # K in {1, 2, 4, 8}: rank lora_r split into K experts of rank lora_r / K
        "gate_input": "sequence",  # sequence | random | token_mean (the paper's gate ablation)
        "hybrid": True,  # false: text-only iLoRA, which isolates the gate's effect against tallrec
        "router_lr_scale": 0.3,
    }

    def design(self) -> Any:
        from methods.llm.recommender import GATE_INPUTS, Design

        experts = int(self.settings["experts"])
        if experts < 1:
            raise UserError(f"ilora: experts must be >= 1, got {experts}")
        if self.settings["gate_input"] not in GATE_INPUTS:
            raise UserError(f"ilora: gate_input must be one of {', '.join(GATE_INPUTS)}, got {self.settings['gate_input']!r}")
        return Design(lora=self.lora_spec(experts), hybrid=bool(self.settings["hybrid"]), gate_input=self.settings["gate_input"])

    def fit(self, train: list[Sample], valid: EvalSet) -> None:
        """Records the router's user-expert mutual information on the validation users before and
        after training: a seeded random router already gates users differently, so only a rise says
        training made the mixture instance-wise (the test gates alone cannot say)."""
        before = self.router_mi(valid)
        super().fit(train, valid)
        if before is not None:
            self._extra.update(valid_gate_mi_init=round(before, 5), valid_gate_mi=round(self.router_mi(valid), 5))

    def router_mi(self, samples: EvalSet) -> float | None:
        """User-expert mutual information of the router as it stands on these users, without an LLM
        pass (the gate reads SASRec's sequence representation, or a fixed random vector); None for
        the token_mean gate, which reads the prompt."""
        import torch

        rec = self.recommender()
        if rec.design.gate_input == "token_mean":
            return None
        with torch.no_grad():
            gates = rec.gates(list(samples.histories), None, None)
        return gate_spread(gates.float().cpu().numpy())[1]

    def score(self, samples: EvalSet) -> np.ndarray:
        scores = super().score(samples)
        if "test_gates" in self._extra and "test_clusters" not in self._extra:
            self._extra["test_clusters"] = self._user_clusters(samples)
        return scores

    def _user_clusters(self, samples: EvalSet, k: int = 4) -> list[int] | None:
        """Test users grouped by their SASRec sequence representation (k-means, seeded), so the
        report can show whether different kinds of users get different experts."""
        from scipy.cluster.vq import kmeans2

        sequence_model = self.sequence_model() if self.design().hybrid or self.settings["gate_input"] == "sequence" else None
        if sequence_model is None or len(samples) < k:
            return None
        reps = sequence_model.encode(samples.histories).detach().float().cpu().numpy().astype(np.float64)
        _, labels = kmeans2(reps, k, seed=self.ctx.seed, minit="++")
        return labels.tolist()
