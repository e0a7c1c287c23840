"""Learning-rate schedules as the suites' configs give them, fitted to the run actually made.

A recipe states its schedule for its own length (PaddleClas ResNet50: 120 epochs, ×0.1 at epochs 30,
60 and 90; PaddleDetection YOLOv3: 270 epochs, warm-up over 4000 iterations). A run may be shorter
or longer (`--epochs 12`, `--steps 500`, the smoke default), so every position in the schedule is
converted to steps with the real steps per epoch and scaled by run length / recipe length: the decays
fall at the same fractions of the run and the schedule always ends where the run ends.

This module is Paddle-free (a `Plan` and its learning rate at any step, for `--print-recipe` and the
unit tests); the engine turns a Plan into `paddle.optimizer.lr` schedulers."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import TrainError

NAMES = ("Constant", "Piecewise", "Cosine", "Polynomial", "Linear")


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
            parts.append(f"linear warm-up from {self.warmup_start_lr:g} over {self.warmup_steps} steps")
        if self.lr_scale != 1.0:
            parts.append(f"rates x{self.lr_scale:.4g} for this run's batch (linear scaling rule)")
        return ", ".join(parts)


def length(recipe: dict, samples: int, global_batch: int, run_steps: int | None = None,
           run_epochs: float | None = None) -> Length:
    """The recipe's length and this run's, in steps. The run is `run_steps`, else `run_epochs` epochs,
    else the recipe's Global.steps (a smoke run), else its whole length (Global.epochs or Global.iters)."""
    g = recipe["Global"]
    per_epoch = max(1, math.ceil(samples / global_batch))
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

    def at(key_epochs: str, key_steps: str, clamp: bool = False) -> list[int] | None:
        """Positions given in epochs or steps of the recipe, as steps of this run. clamp (the warm-up):
        a position beyond the recipe's length is its end. PaddleDetection counts its warm-up in
        iterations (YOLOv3: 4000) whatever the dataset; on a set so small that the whole recipe is
        shorter, the warm-up spans all of it instead of failing."""
        if lr.get(key_epochs) is not None:
            raw = lr[key_epochs] if isinstance(lr[key_epochs], list) else [lr[key_epochs]]
            nominal = [float(e) * size.steps_per_epoch for e in raw]
        elif lr.get(key_steps) is not None:
            raw = lr[key_steps] if isinstance(lr[key_steps], list) else [lr[key_steps]]
            nominal = [float(s) for s in raw]
        else:
            return None
        if clamp:
            nominal = [min(n, float(size.nominal_steps)) for n in nominal]
        if any(n > size.nominal_steps for n in nominal):
            raise TrainError(f"Optimizer.lr.{key_epochs if lr.get(key_epochs) is not None else key_steps}={raw}: "
                             "beyond the recipe's length (Global.epochs / Global.iters)")
        return [min(total, int(round(n * size.scale))) for n in nominal]

    warmup = (at("warmup_epoch", "warmup_steps", clamp=True) or [0])[0]
    if lr.get("warmup_proportion") is not None:
        # PaddleNLP's LinearDecayWithWarmup(warmup=0.1): a fraction of the run's steps, floor(0.1 x total).
        if lr.get("warmup_epoch") is not None or lr.get("warmup_steps") is not None:
            raise TrainError("Optimizer.lr.warmup_proportion: give the warm-up one way, not also warmup_epoch or "
                             "warmup_steps")
        fraction = float(lr["warmup_proportion"])
        if not 0 <= fraction < 1:
            raise TrainError(f"Optimizer.lr.warmup_proportion={lr['warmup_proportion']}: expected a fraction of the "
                             "run, 0 <= p < 1 (BERT on GLUE: 0.1)")
        warmup = int(math.floor(fraction * total))
    if warmup >= total and warmup > 0:
        warmup = max(0, total - 1)   # a run shorter than the warm-up still reaches the base rate
    start = float(lr["warmup_start_lr"]) * k if "warmup_start_lr" in lr else base * float(lr.get("warmup_start_factor", 0.0))
    if name == "Piecewise":
        boundaries = at("decay_epochs", "decay_steps") or []
        values = [float(v) * k for v in lr["values"]] if lr.get("values") else \
            [base * float(lr.get("gamma", 0.1)) ** i for i in range(len(boundaries) + 1)]
        if len(values) != len(boundaries) + 1:
            raise TrainError(f"Optimizer.lr.values: {len(values)} values for {len(boundaries)} boundaries "
                             "(expected one more value than boundaries)")
        return Plan(name, values[0], total, boundaries, values, warmup_steps=warmup, warmup_start_lr=start, lr_scale=k)
    return Plan(name, base, total, power=float(lr.get("power", 1.0)), end_lr=float(lr.get("end_lr", 0.0)) * k,
                warmup_steps=warmup, warmup_start_lr=start, lr_scale=k)
