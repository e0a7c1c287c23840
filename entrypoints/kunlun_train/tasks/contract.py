"""What a task plugs into the training engine (engine.py): the abstract Task and Metric its Paddle
adapter (tasks/<task>/adapter.py) implements, and the Spec its Paddle-free spec.py declares.

The engine owns what every task shares: the loop, the learning-rate schedule, the DataLoader and its
sharding across ranks, evaluation cadence, checkpoints and the best one, logs, export. A task is a thin
adapter: its model, datasets and transforms, loss, metric, export input spec and what a prediction
looks like. This file is Paddle-free: the CLI reads the specs before Paddle is imported.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


class Metric(abc.ABC):
    """A task's evaluation metric over a split that may be sharded across ranks: each rank updates
    with its batches and hands over `state()` (anything picklable); `merge` of every rank's state is
    the metric over the whole split, the same as one rank evaluating all of it."""

    @abc.abstractmethod
    def update(self, outputs: Any, batch: Any) -> None: ...

    @abc.abstractmethod
    def state(self) -> Any: ...

    @abc.abstractmethod
    def merge(self, states: list) -> dict[str, float]:
        """{name: value}, the primary metric first."""


class Task(abc.ABC):
    """One task's adapter (classification, detection, ...). Built once per process with the
    effective recipe (the suite's configuration only), the mounted dataset directory (None: synthetic
    data), the rank's World and the run's options.RunOptions (what the command line and the image say:
    the device, the threads, the recipe's name; a task reads runtime facts there, never in the recipe)."""

    unit = "images/s"                  # throughput unit of a step: what `samples()` counts
    eval_unit: str | None = None       # what an evaluation sample is called in the eval line (default: unit's)
    primary = "loss"                   # the metric that picks the best checkpoint (higher is better)
    max_workers: int | None = None     # DataLoader worker processes at most (0: data made in this process)
    serve_without_init: tuple[str, ...] = ()   # suite packages `serve` imports without their inits (imports.py)
    serve_unused: tuple[str, ...] = ()         # modules those import but a route never calls (imports.unused)

    def __init__(self, recipe: dict, data: str | None, world, options):
        self.recipe, self.data, self.world, self.options = recipe, data, world, options

    # --- data --------------------------------------------------------------------------------
    @abc.abstractmethod
    def datasets(self) -> tuple[Any, Any | None]:
        """(train, eval) paddle.io.Datasets; eval is None when the data has no validation split.
        Dataset problems raise TrainError naming file:line, before the first step."""

    def describe_data(self) -> str:
        return "synthetic" if self.data is None else self.data

    def collate_fn(self):
        return None                    # paddle's default: stack arrays field by field

    def samples(self, batch) -> float:
        """How much one batch is, counted in `unit` (for the throughput)."""
        return float(len(batch[0]))

    def batch_bytes(self) -> int:
        """About how many bytes a training batch takes in flight (for the shared-memory check)."""
        return 0

    # --- model, loss, optimisation -------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self):
        """The paddle.nn.Layer, from random initialisation (nothing downloaded)."""

    @abc.abstractmethod
    def loss(self, model, batch):
        """Forward pass and the loss tensor for one batch."""

    def trainable(self, model) -> list:
        """The parameters the optimizer updates (a recipe may freeze some)."""
        return [p for p in model.parameters() if not p.stop_gradient]

    def train_step(self, model, batch, optimizer):
        """One optimisation step; returns the loss (a tensor or a float). The default is the
        supervised one; a task whose suite owns the update (PARL's agent.learn) overrides it."""
        loss = self.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return loss

    # --- evaluation ----------------------------------------------------------------------------
    @abc.abstractmethod
    def metric(self) -> Metric: ...

    has_clock = False   # evaluates on a clock of its own (eval_due), besides --eval-every

    def eval_due(self, step: int) -> bool:
        """With has_clock, for a task whose evaluation follows a clock of its own (DQN: every N
        finished training episodes, as PARL's examples): asked after every training step (on every
        rank, so it may agree with the others through a collective), True to evaluate now; such a
        run also evaluates at its end."""
        return False

    def evaluate_batch(self, model, batch) -> Any:
        """The model's outputs for one eval batch (the metric's input)."""
        return model(batch[0])

    def predictions(self, outputs, batch) -> list[dict]:
        """Per-sample predictions of an eval batch, for `eval --predictions FILE`."""
        return []

    # --- export and prediction ------------------------------------------------------------------
    input_suffixes: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")   # what `predict DIR` reads

    @abc.abstractmethod
    def input_spec(self) -> list:
        """paddle.static.InputSpec list of the exported inference model."""

    def adapt_weights(self, model, state: dict) -> dict:
        """Weights from a file (--pretrained, eval, export) as this model names them; the suite's
        published files may name a part of it (a backbone) on its own."""
        return state

    def export_layer(self, model):
        """The layer paddle.jit.save writes (the model, or the model plus its deploy-time head)."""
        return model

    def predict(self, predictor, config: dict, files: list, labels: dict | None, args):
        """Yield (input, result dict, one-line summary) per input file, running `predictor`
        (arrays in, arrays out) with the exported inference.yml `config`."""
        raise NotImplementedError

    def inference_config(self) -> dict:
        """What is written beside the exported model (inference.yml): preprocessing and
        post-processing, in the suite's own deploy format where it has one."""
        return {}

    # --- checkpoints ----------------------------------------------------------------------------
    def save_extra(self, directory) -> None:
        """Files a checkpoint needs besides the weights (a vocabulary, ...)."""

    def load_extra(self, directory) -> None: ...

    def save_state(self, directory) -> None:
        """What --resume needs besides the weights and the optimizer (DQN: the replay memory, the
        target network, the agent's counters); written to ckpt-*/ only, not to best/."""

    def load_state(self, directory) -> None:
        """Restore save_state's files on --resume (after the weights and load_extra)."""


@dataclass(frozen=True)
class Spec:
    """What the CLI knows of a task before Paddle is imported (tasks/<module>/spec.py declares it)."""
    module: str                  # tasks/<module>/, the task's package
    adapter: str                 # the Task class of tasks/<module>/adapter.py for this task
    data_help: str               # what --data expects, for --help and errors
    defaults: dict = field(default_factory=dict)   # recipe keys every model of the task has
    max_threads: int | None = None   # a default cap: small networks run faster on fewer threads
    synthetic: str = "synthetic data"   # what it trains on without --data
    # datasets/<module>.check(recipe, data, command): the mounted dataset parsed before Paddle is imported
    data_check: str | None = None
    examples: str | None = None  # --help examples ({model} filled in) replacing the dataset ones
    vocabulary: bool = False     # tokenizes text: the commands take --vocab FILE (recipe Tokenizer.vocab_file)
    # The recipe key of the class count that the mounted data decides unless -o sets it
    # (datasets/<data_check>.class_count): a recipe's 1000 must not train a 3-class list.
    classes: str | None = None

