"""Learning-rate schedules as the suites' configs give them, fitted to the run actually made.

A recipe states its schedule for its own length (PaddleClas ResNet50: 120 epochs, ×0.1 at epochs 30,
60 and 90; PaddleDetection YOLOv3: 270 epochs, warm-up over 4000 iterations). A run may be shorter
or longer (`--epochs 12`, `--steps 500`, the smoke default), so every position in the schedule is
converted to steps with the real steps per epoch and scaled by run length / recipe length: the decays
fall at the same fractions of the run and the schedule always ends where the run ends. The warm-up
is the exception: it keeps the length the suite gives it (5 epochs, 4000 iterations), as the suites
do for a run of any length, capped at half of a very short run (warmup_steps, WARMUP_CAP).

This module is Paddle-free (a `Plan` and its learning rate at any step, for `--print-recipe` and the
unit tests); the engine turns a Plan into `paddle.optimizer.lr` schedulers."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import TrainError

NAMES = ("Constant", "Piecewise", "Cosine", "Polynomial", "Linear")
# A warm-up takes at most this share of the run: a run shorter than twice the recipe's warm-up (a
# smoke run, a quick look at a dataset) still trains half of its steps at the recipe's rates.
WARMUP_CAP = 0.5


@dataclass(frozen=True)
class Length:
    """How long the recipe is (nominal) and how long this run is, in steps."""
    steps_per_epoch: int
    nominal_steps: int            # the recipe's own length: Global.epochs x steps per epoch, or Global.iters
    run_steps: int                # what this run trains

    @property
    def scale(self) -> float:
        return self.run_steps / self.nominal_steps


@dataclass(frozen=True)
class Plan:
    name: str                     # one of NAMES
    learning_rate: float          # the base (peak) learning rate
    total_steps: int
    boundaries: list[int] = field(default_factory=list)   # Piecewise: absolute steps where a value starts
    values: list[float] = field(default_factory=list)     # Piecewise: len(boundaries) + 1 values
    power: float = 1.0            # Polynomial
    end_lr: float = 0.0           # Polynomial / Linear / Cosine floor
    warmup_steps: int = 0
    warmup_start_lr: float = 0.0
    lr_scale: float = 1.0         # applied to every rate: this run's global batch / the recipe's (linear rule)
    warmup_asked: int = 0         # the recipe's warm-up in steps, before the WARMUP_CAP of a short run

    def lr_at(self, step: int) -> float:
        """The learning rate used for the 0-based optimisation step `step` (what Paddle's schedulers give)."""
        if step < self.warmup_steps:
            return self.warmup_start_lr + (self.learning_rate - self.warmup_start_lr) * step / self.warmup_steps
        if self.name == "Piecewise":
            return self.values[sum(step >= b for b in self.boundaries)]
        rest = max(1, self.total_steps - self.warmup_steps)    # the decay runs after the warm-up
        t = min(step - self.warmup_steps, rest)
        if self.name == "Cosine":
            return self.end_lr + (self.learning_rate - self.end_lr) * (1 + math.cos(math.pi * t / rest)) / 2
        if self.name in ("Polynomial", "Linear"):
            power = 1.0 if self.name == "Linear" else self.power
            return (self.learning_rate - self.end_lr) * (1 - t / rest) ** power + self.end_lr
        return self.learning_rate

    def describe(self) -> str:
        parts = [f"{self.name} {self.learning_rate:g} over {self.total_steps} steps"]
        if self.name == "Piecewise" and self.boundaries:
            parts.append("then " + ", ".join(f"{v:g} from step {b}" for b, v in zip(self.boundaries, self.values[1:])))
        if self.name == "Polynomial":
            parts.append(f"power {self.power:g}")
        if self.warmup_steps:
            parts.append(f"linear warm-up from {self.warmup_start_lr:g} over {self.warmup_steps} steps"
                         + (f" (the recipe's {self.warmup_asked}, cut to half of this run)"
                            if self.warmup_asked > self.warmup_steps else ""))
        if self.lr_scale != 1.0:
            parts.append(f"rates x{self.lr_scale:.4g} for this run's batch (linear scaling rule)")
        return ", ".join(parts)


def epoch_steps(samples: int, batch: int, ranks: int = 1) -> int:
    """Optimisation steps in one epoch: each rank's shard (Paddle's DistributedBatchSampler pads the
    set to a multiple of the ranks) in whole batches of `batch`. The incomplete last batch is dropped,
    as PaddleDetection's and PaddleSeg's training readers and timm do: a step on a few samples at the
    full rate, through BatchNorm's statistics of those few, undoes much of what the epoch learned
    (898 images in batches of 64 end every epoch on 2 of them). The sampler reshuffles every epoch,
    so a different few wait each time. A shard smaller than one batch is one step of all of it."""
    shard = math.ceil(samples / max(1, ranks))
    return max(1, shard // batch)


def drops_last(samples: int, batch: int, ranks: int = 1) -> bool:
    """Whether the training sampler drops the incomplete last batch (see epoch_steps): not when the
    whole shard is smaller than one batch, which is then the epoch's only step."""
    return math.ceil(samples / max(1, ranks)) >= batch


def length(recipe: dict, samples: int, batch: int, run_steps: int | None = None,
           run_epochs: float | None = None, ranks: int = 1) -> Length:
    """The recipe's length and this run's, in steps of `batch` samples on each of `ranks` ranks. The
    run is `run_steps`, else `run_epochs` epochs, else the recipe's Global.steps (a smoke run), else
    its whole length (Global.epochs or Global.iters)."""
    g = recipe["Global"]
    per_epoch = epoch_steps(samples, batch, ranks)
    if g.get("epochs"):
        nominal = int(round(float(g["epochs"]) * per_epoch))
    elif g.get("iters"):
        nominal = int(g["iters"])
    else:
        nominal = int(g.get("steps") or per_epoch)
    if run_steps is None and run_epochs is not None:
        run_steps = int(round(run_epochs * per_epoch))
    if run_steps is None:
        run_steps = int(g["steps"]) if g.get("steps") else nominal
    if run_steps < 1:
        raise TrainError(f"the run would train {run_steps} steps; give --steps or --epochs of at least 1 step")
    return Length(per_epoch, max(1, nominal), run_steps)


def plan(lr: dict, size: Length, global_batch: int | None = None) -> Plan:
    """The recipe's Optimizer.lr section (PaddleClas names: Piecewise with decay_epochs and values,
    Cosine, Polynomial with power, Linear; warmup_epoch or warmup_steps with warmup_start_lr or
    warmup_start_factor, or PaddleNLP's warmup_proportion of the run) fitted to this run. With `reference_batch` (the global batch the rates were
    tuned for, e.g. 4 cards x 64), every rate is scaled by global_batch / reference_batch, the linear
    scaling rule the suites' docs give for runs on fewer or more cards."""
    name = lr.get("name", "Constant")
    if name not in NAMES:
        raise TrainError(f"Optimizer.lr.name={name!r}: expected one of {', '.join(NAMES)}")
    k = global_batch / float(lr["reference_batch"]) if lr.get("reference_batch") and global_batch else 1.0
    base = float(lr["learning_rate"]) * k
    total = size.run_steps

    def at(key_epochs: str, key_steps: str) -> list[int] | None:
        """Positions given in epochs or steps of the recipe, as steps of this run (scaled by run
        length / recipe length: a decay falls at the same fraction of the run)."""
        if lr.get(key_epochs) is not None:
            raw = lr[key_epochs] if isinstance(lr[key_epochs], list) else [lr[key_epochs]]
            nominal = [float(e) * size.steps_per_epoch for e in raw]
        elif lr.get(key_steps) is not None:
            raw = lr[key_steps] if isinstance(lr[key_steps], list) else [lr[key_steps]]
            nominal = [float(s) for s in raw]
        else:
            return None
        if any(n > size.nominal_steps for n in nominal):
            raise TrainError(f"Optimizer.lr.{key_epochs if lr.get(key_epochs) is not None else key_steps}={raw}: "
                             "beyond the recipe's length (Global.epochs / Global.iters)")
        return [min(total, int(round(n * size.scale))) for n in nominal]

    warmup = asked = warmup_steps(lr, size)
    if lr.get("warmup_proportion") is not None:
        # PaddleNLP's LinearDecayWithWarmup(warmup=0.1): a fraction of the run's steps, floor(0.1 x total).
        if lr.get("warmup_epoch") is not None or lr.get("warmup_steps") is not None:
            raise TrainError("Optimizer.lr.warmup_proportion: give the warm-up one way, not also warmup_epoch or "
                             "warmup_steps")
        fraction = float(lr["warmup_proportion"])
        if not 0 <= fraction < 1:
            raise TrainError(f"Optimizer.lr.warmup_proportion={lr['warmup_proportion']}: expected a fraction of the "
                             "run, 0 <= p < 1 (BERT on GLUE: 0.1)")
        warmup = asked = int(math.floor(fraction * total))
    warmup = min(warmup, int(total * WARMUP_CAP))
    start = float(lr["warmup_start_lr"]) * k if "warmup_start_lr" in lr else base * float(lr.get("warmup_start_factor", 0.0))
    if name == "Piecewise":
        boundaries = at("decay_epochs", "decay_steps") or []
        values = [float(v) * k for v in lr["values"]] if lr.get("values") else \
            [base * float(lr.get("gamma", 0.1)) ** i for i in range(len(boundaries) + 1)]
        if len(values) != len(boundaries) + 1:
            raise TrainError(f"Optimizer.lr.values: {len(values)} values for {len(boundaries)} boundaries "
                             "(expected one more value than boundaries)")
        return Plan(name, values[0], total, boundaries, values, warmup_steps=warmup, warmup_start_lr=start,
                    lr_scale=k, warmup_asked=asked)
    return Plan(name, base, total, power=float(lr.get("power", 1.0)), end_lr=float(lr.get("end_lr", 0.0)) * k,
                warmup_steps=warmup, warmup_start_lr=start, lr_scale=k, warmup_asked=asked)


def warmup_steps(lr: dict, size: Length) -> int:
    """The warm-up as the suites count it: `warmup_epoch` epochs of the real steps per epoch, or
    `warmup_steps` iterations, whatever the run's length. PaddleClas's `-o Global.epochs=30` of
    MobileNetV3's 360-epoch recipe still warms up over 5 epochs, PaddleDetection's YOLOv3 over 4000
    iterations: the warm-up is about the model and the rate, not the run's length, so it is not
    scaled with the run as decay points are (plan() caps it at WARMUP_CAP of a very short run)."""
    if lr.get("warmup_epoch") is not None:
        return int(round(float(lr["warmup_epoch"]) * size.steps_per_epoch))
    if lr.get("warmup_steps") is not None:
        return int(round(float(lr["warmup_steps"])))
    return 0
