"""GRU4Rec, Caser and SASRec: RecBole's own models and trainer, fed our split, scored on our candidates.

How our data reaches RecBole: the training windows (and the validation samples) are written as
RecBole "benchmark" atomic files in the run's work folder -- `windows.train.inter`,
`windows.valid.inter`, `windows.test.inter` with columns user_id, item_id_list (the history) and
item_id (the target) -- plus `windows.item` listing every item, so that items never seen in
training still get an embedding and can be scored. RecBole reads pre-split files as they are,
without re-cutting sequences, so it trains on exactly our windows under every split scheme,
including published splits that come as windows only (user -1). The `test` file repeats the
validation samples because RecBole requires three files; our test samples never reach RecBole.
Windows with an empty history are left out (RecBole's models need one item to encode; its own
augmentation never makes such windows), and counted in the run record.

Training: RecBole's Config / create_dataset / data_preparation / model / Trainer, one call of
`Trainer._train_epoch` (the body of RecBole's own `fit` loop) per epoch, cross-entropy over all
items. Model selection is ours, not RecBole's evaluator: after every epoch the model scores the
frozen validation candidates; the best epoch by HR@1 (ties: NDCG@5) is kept, and training stops
after `stopping_step` epochs without improvement.

Scoring: `full_sort_predict` (RecBole's scores for every item), read at the candidate ids; the
same matrix gives the full-ranking metrics.

User ids (only Caser uses them): a sample's own user token when the held-out users also have
training windows (split `loo`); otherwise (splits `llara` and `given`, whose held-out users are
new) one shared token for every sample, so training and test see the same kind of input and
Caser is a pure sequence model.

Parameters keep RecBole's names and go straight into its Config. Module-level imports stay light:
`run_bench.py --list` imports this file.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness.data import Sample
from harness.errors import UserError
from harness.evaluate import metrics, ranks_from_scores
from harness.protocol import EvalSet
from methods.base import METHODS, Method, RunContext

if TYPE_CHECKING:
    import torch

log = logging.getLogger("ilora_bench")
ATOMIC_NAME = "windows"  # RecBole data set name; never "ml-100k", which RecBole maps to its own copy
SHARED_USER = "shared"
SAVE_FORMAT = "ilora-bench recbole v1"
SCORE_BATCH = 1024

# Training settings shared by the three models (RecBole's names). Chosen on ml-100k (split llara,
# seed 0) for a CPU budget: at learning rate 0.003 the validation HR@1 of all three peaks within
# about 3-7 epochs (0.001 needs 2-3x more); batch 512 and 1024 cost the same per epoch here.
TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.003,
    "train_batch_size": 512,
    "epochs": 20,  # at most; early stopping usually ends training well before
    "stopping_step": 3,  # epochs without a better validation HR@1 (ties: NDCG@5) before stopping
    "weight_decay": 0.0,
}


def write_atomic_files(folder: Path, train: list[Sample], valid: list[Sample], n_items: int, personal: bool) -> None:
    """The benchmark atomic files RecBole reads (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def write(part: str, samples: list[Sample]) -> None:
        rows = (f"{user_token(s.user, personal)}\t{' '.join(map(str, s.history))}\t{s.target}\n" for s in samples)
        (folder / f"{ATOMIC_NAME}.{part}.inter").write_text(header + "".join(rows))

    write("train", train)
    write("valid", valid)
    write("test", valid)
    (folder / f"{ATOMIC_NAME}.item").write_text("item_id:token\n" + "".join(f"{i}\n" for i in range(n_items)))


def user_token(user: int, personal: bool) -> str:
    return str(user) if personal else SHARED_USER


def recbole_config_dict(
    params: dict[str, Any], data_dir: Path, work_dir: Path, max_len: int, seed: int
) -> dict[str, Any]:
    """Everything RecBole's Config needs beyond its defaults; all its output goes under work_dir."""
    return {
        **params,
        "data_path": str(data_dir),
        "checkpoint_dir": str(work_dir / "saved"),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
        "alias_of_item_id": ["item_id_list"],  # histories and targets share one item vocabulary
        "MAX_ITEM_LIST_LENGTH": max_len,
        "loss_type": "CE",
        "train_neg_sample_args": None,  # required by CE
        "seed": seed,
        "show_progress": False,
        "worker": 0,
        "use_gpu": False,  # the device is set on the Config afterwards (RecBole would pick cuda:0)
    }


class _SavedVocabulary:
    """Stands in for RecBole's Dataset when a model is rebuilt from saved weights.

    RecBole's models read only the vocabulary sizes from their dataset (`num(item_id)`, Caser
    also `user_num`), so load() needs no training files.
    """

    def __init__(self, n_items: int, n_users: int) -> None:
        self.n_items, self.user_num = n_items, n_users

    def num(self, field: str) -> int:
        if field != "item_id":
            raise KeyError(f"saved RecBole vocabulary has no field {field!r}")
        return self.n_items


class RecBoleMethod(Method):
    """The adapter the three models share; a subclass names its RecBole model and its parameters."""

    recbole_model: ClassVar[str]  # class name in recbole.model.sequential_recommender
    # Fit to early stop on ml-100k, 2 idle cores (bench/recbole_train_time.py, in README); for the plan line.
    cpu_minutes: ClassVar[float]
    reusable = True
    # Caser's activations turn denormal on CPU and slow it down 4x (see harness.compat.flush_denormal).
    flush_denormals: ClassVar[bool] = False

    def __init__(self, ctx: RunContext, **params: Any) -> None:
        super().__init__(ctx, **params)
        self.model: Any = None
        self.curve: list[dict[str, float]] = []
        self.best_epoch = -1
        self.dropped_empty = 0

    @classmethod
    def estimate_minutes(cls, params: dict[str, Any]) -> float | None:
        return cls.cpu_minutes

    @classmethod
    def plan(cls, params: dict[str, Any]) -> str | None:
        return (f"RecBole's {cls.recbole_model} on every training window, at most {params['epochs']} epochs, stopping "
                f"after {params['stopping_step']} without a better validation HR@1; ~{cls.cpu_minutes:g} min on 2 CPU cores")

    # ------------------------------------------------------------------ training

    def fit(self, train: list[Sample], valid: EvalSet) -> None:
        import torch

        from harness import compat

        compat.import_recbole()
        from recbole.data import create_dataset, data_preparation

        if int(self.params["epochs"]) < 1:
            raise UserError(f"{self.recbole_model}: epochs must be at least 1, got {self.params['epochs']}")
        # RecBole's sequential models encode at least one item (its own augmentation never makes an
        # empty window); LLaRA's published LastFM split starts each sequence with one: left out.
        usable = [s for s in train if s.history]
        self.dropped_empty = len(train) - len(usable)
        if not usable:
            raise UserError(f"data set {self.ctx.dataset!r}: no training window has a history ({self.recbole_model})")
        train_users = {s.user for s in usable}
        self.personal = all(0 <= int(u) and int(u) in train_users for u in valid.users)  # published splits: user -1
        valid_samples = [
            Sample(int(u), h, int(t)) for u, h, t in zip(valid.users, valid.histories, valid.targets) if h
        ]  # RecBole's copy, read by RecBole's own evaluator in bench/recbole_overhead.py only
        self.max_len = max(len(s.history) for s in (*usable, *valid_samples))
        data_dir = self.ctx.work_dir / "recbole"
        write_atomic_files(data_dir / ATOMIC_NAME, usable, valid_samples, self.ctx.n_items, self.personal)

        config = self._config(data_dir)
        with compat.quiet_recbole(), self._numerics(), torch.random.fork_rng(devices=self._cuda_devices()):
            dataset = create_dataset(config)
            train_data, _, _ = data_preparation(config, dataset)
            # RecBole numbers tokens in order of appearance, 0 being padding: keep our id of each RecBole id
            self.item_order = [int(t) for t in dataset.field2id_token["item_id"][1:]]
            self.user_tokens = [str(t) for t in dataset.field2id_token["user_id"][1:]]
            self._index_vocabulary()
            torch.manual_seed(self.ctx.seed)
            self.model = self.recbole_class()(config, dataset).to(config["device"])
            trainer = compat.make_trainer(config, self.model, self.ctx.work_dir / "log_tensorboard")
            try:
                self._train(trainer, train_data, valid)
            finally:
                trainer.tensorboard.close()

    def _train(self, trainer: Any, train_data: Any, valid: EvalSet) -> None:
        """RecBole's epoch loop, with model selection on our validation candidates."""
        best_key, best_state, stale = (-1.0, -1.0), None, 0
        self.curve = []
        for epoch in range(int(self.params["epochs"])):
            t0 = time.perf_counter()
            loss = trainer._train_epoch(train_data, epoch) / len(train_data)  # RecBole returns the sum over batches
            valid_metrics = metrics(ranks_from_scores(self.score(valid), valid.target_index))
            key = (valid_metrics["HR@1"], valid_metrics["NDCG@5"])
            self.curve.append({
                "epoch": epoch, "loss": round(float(loss), 4), "HR@1": key[0], "NDCG@5": round(key[1], 6),
                "seconds": round(time.perf_counter() - t0, 3),
            })
            log.info(
                "%s epoch %d: loss %.4f, valid HR@1 %.4f, NDCG@5 %.4f (%.1f s)",
                self.recbole_model, epoch, loss, key[0], key[1], self.curve[-1]["seconds"],
            )
            if key > best_key:
                best_key, best_state, stale, self.best_epoch = key, copy.deepcopy(self.model.state_dict()), 0, epoch
            else:
                stale += 1
            if self.ctx.report is not None:
                self.ctx.report(epoch, key[0])  # may raise optuna.TrialPruned: let it end the run
            if stale >= int(self.params["stopping_step"]):
                break
        self.model.load_state_dict(best_state)

    # ------------------------------------------------------------------ scoring

    def score(self, samples: EvalSet) -> np.ndarray:
        return np.take_along_axis(self.score_all(samples), samples.candidates, axis=1)

    def score_all(self, samples: EvalSet) -> np.ndarray:
        """[N, n_items] scores from RecBole's full_sort_predict, columns in our item order."""
        import torch

        out = []
        self.model.eval()
        with torch.no_grad(), self._numerics():
            for start in range(0, len(samples), SCORE_BATCH):
                stop = start + SCORE_BATCH
                inter = self._interaction(samples.histories[start:stop], samples.users[start:stop])
                out.append(self.model.full_sort_predict(inter)[:, self._rb_items].double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.ctx.n_items))

    def encode(self, histories: list[tuple[int, ...]], users: Any = None) -> "torch.Tensor":
        """[N, d] sequence representations; `encode(h) @ item_embeddings().T` are the scores.

        `users` matters for Caser under split `loo` only (see the module docstring).
        """
        import torch

        self.model.eval()
        with torch.no_grad(), self._numerics():
            return self._forward(self._interaction(histories, users))

    def item_embeddings(self) -> "torch.Tensor":
        """[n_items, d] output item embeddings, row i = our item id i."""
        import torch

        weight = self.model.item_embedding.weight.detach()
        return weight[torch.as_tensor(self._rb_items, device=weight.device)]

    def _forward(self, inter: Any) -> "torch.Tensor":
        return self.model.forward(inter["item_id_list"], inter["item_length"])

    def _interaction(self, histories: list[tuple[int, ...]], users: Any = None) -> Any:
        """RecBole's input for our samples: last max_len items, left-aligned and zero-padded as RecBole pads.

        An empty history (possible with --min-history 0) is encoded as a single padding item.
        """
        import torch
        from recbole.data.interaction import Interaction

        n = len(histories)
        seq = np.zeros((n, self.max_len), dtype=np.int64)
        lengths = np.ones(n, dtype=np.int64)
        for i, h in enumerate(histories):
            h = h[-self.max_len :]
            seq[i, : len(h)] = self._rb_items[list(h)]
            lengths[i] = max(len(h), 1)
        # 0 is RecBole's padding id: a user without training windows (never the case for a shared token)
        tokens = [SHARED_USER] * n if users is None else [user_token(int(u), self.personal) for u in users]
        user_ids = [self._user_index.get(t, 0) for t in tokens]
        device = self.model.item_embedding.weight.device
        return Interaction({
            "item_id_list": torch.as_tensor(seq), "item_length": torch.as_tensor(lengths),
            "user_id": torch.as_tensor(user_ids, dtype=torch.long),
        }).to(device)

    # ------------------------------------------------------------------ reuse

    def save(self, folder: Path) -> None:
        import torch

        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, folder / "model.pt")
        state = {
            "format": SAVE_FORMAT, "recbole_model": self.recbole_model, "params": self.params, "max_len": self.max_len,
            "personal": self.personal, "item_order": self.item_order, "user_tokens": self.user_tokens,
            "best_epoch": self.best_epoch, "curve": self.curve,
        }
        (folder / "recbole.json").write_text(json.dumps(state, indent=1) + "\n")

    def load(self, folder: Path) -> None:
        import torch

        state = json.loads((folder / "recbole.json").read_text())
        if state.get("format") != SAVE_FORMAT or state["recbole_model"] != self.recbole_model:
            raise UserError(f"{folder}: not a saved {self.recbole_model} of this version ({state.get('format')!r})")
        self.params, self.max_len, self.personal = state["params"], state["max_len"], state["personal"]
        self.item_order, self.user_tokens = state["item_order"], state["user_tokens"]
        self.best_epoch, self.curve = state["best_epoch"], state["curve"]
        self._index_vocabulary()
        config = self._config(self.ctx.work_dir / "recbole")
        vocabulary = _SavedVocabulary(len(self.item_order) + 1, len(self.user_tokens) + 1)
        self.model = self.recbole_class()(config, vocabulary).to(config["device"])
        weights = torch.load(folder / "model.pt", map_location=config["device"], weights_only=True)
        self.model.load_state_dict(weights)

    # ------------------------------------------------------------------ bookkeeping

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def record_extra(self) -> dict[str, Any]:
        return {
            "recbole_model": self.recbole_model, "best_epoch": self.best_epoch, "epochs_trained": len(self.curve),
            "user_ids": "per user" if self.personal else "shared", "max_len": self.max_len,
            "dropped_empty_history_windows": self.dropped_empty, "valid_curve": self.curve,
        }

    # ------------------------------------------------------------------ helpers

    @classmethod
    def recbole_class(cls) -> type:
        """The RecBole model class (imported here: RecBole is too heavy for module level)."""
        from harness import compat

        compat.import_recbole()
        import recbole.model.sequential_recommender as models

        return getattr(models, cls.recbole_model)

    def _config(self, data_dir: Path) -> Any:
        import torch

        from harness import compat

        settings = recbole_config_dict(self.params, data_dir, self.ctx.work_dir, self.max_len, self.ctx.seed)
        config = compat.make_config(self.recbole_class(), ATOMIC_NAME, settings)
        config["device"] = torch.device(self.ctx.device)
        return config

    def _index_vocabulary(self) -> None:
        if sorted(self.item_order) != list(range(self.ctx.n_items)):
            raise UserError(
                f"{self.recbole_model}: RecBole's item vocabulary ({len(self.item_order)} items) does not match "
                f"data set {self.ctx.dataset!r} ({self.ctx.n_items} items)"
            )
        self._rb_items = np.empty(self.ctx.n_items, dtype=np.int64)
        self._rb_items[self.item_order] = np.arange(1, len(self.item_order) + 1)
        self._user_index = {t: i for i, t in enumerate(self.user_tokens, 1)}

    def _numerics(self) -> Any:
        import contextlib

        from harness import compat

        return compat.flush_denormal() if self.flush_denormals else contextlib.nullcontext()

    def _cuda_devices(self) -> list[int]:
        import torch

        return [torch.device(self.ctx.device).index or 0] if self.ctx.device.startswith("cuda") else []


@METHODS.register("gru4rec", "GRU4Rec (Hidasi et al. 2016) trained by RecBole, cross-entropy over all items")
class GRU4RecMethod(RecBoleMethod):
    recbole_model = "GRU4Rec"
    cpu_minutes = 1
    defaults: ClassVar[dict[str, Any]] = {
        **TRAINING_DEFAULTS, "embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3,
    }

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "embedding_size": trial.suggest_categorical("embedding_size", [32, 64, 128]),
            "hidden_size": trial.suggest_categorical("hidden_size", [64, 128, 256]),
            "num_layers": trial.suggest_int("num_layers", 1, 2),
            "dropout_prob": trial.suggest_float("dropout_prob", 0.0, 0.5),
        }


@METHODS.register("caser", "Caser (Tang & Wang 2018) trained by RecBole, cross-entropy over all items")
class CaserMethod(RecBoleMethod):
    recbole_model = "Caser"
    cpu_minutes = 1.5
    flush_denormals = True
    defaults: ClassVar[dict[str, Any]] = {
        **TRAINING_DEFAULTS, "embedding_size": 64, "nh": 8, "nv": 4, "dropout_prob": 0.4, "reg_weight": 1e-4,
    }

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "embedding_size": trial.suggest_categorical("embedding_size", [32, 64, 128]),
            "nh": trial.suggest_categorical("nh", [4, 8, 16]),
            "nv": trial.suggest_categorical("nv", [2, 4, 8]),
            "dropout_prob": trial.suggest_float("dropout_prob", 0.0, 0.5),
            "reg_weight": trial.suggest_float("reg_weight", 1e-6, 1e-3, log=True),
        }

    def _forward(self, inter: Any) -> "torch.Tensor":
        return self.model.forward(inter["user_id"], inter["item_id_list"])


@METHODS.register("sasrec", "SASRec (Kang & McAuley 2018) trained by RecBole, cross-entropy over all items")
class SASRecMethod(RecBoleMethod):
    recbole_model = "SASRec"
    cpu_minutes = 2
    defaults: ClassVar[dict[str, Any]] = {
        **TRAINING_DEFAULTS, "hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2,
        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5,
    }

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        hidden = trial.suggest_categorical("hidden_size", [32, 64, 128])
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "hidden_size": hidden,
            "inner_size": hidden * trial.suggest_categorical("inner_factor", [1, 2, 4]),
            "n_layers": trial.suggest_int("n_layers", 1, 3),
            "n_heads": trial.suggest_categorical("n_heads", [1, 2, 4]),
            "hidden_dropout_prob": trial.suggest_float("hidden_dropout_prob", 0.0, 0.5),
            "attn_dropout_prob": trial.suggest_float("attn_dropout_prob", 0.0, 0.5),
        }
