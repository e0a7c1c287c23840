"""When a training run evaluates, saves and stops: one small object the engine asks once after every
step, instead of the rules spread over its loop. Paddle-free (unit-tested on the host).

- Evaluate every `eval_every` steps (--eval-every, else the recipe's Global.eval_every or its
  Global.eval_interval epochs; never without a validation split), or when the task's own clock says
  so (DQN: every N finished episodes); and once at the end of a run that trained and was not stopped.
- Save every `save_every` steps, or when `save_minutes` have passed since the last save (--output
  only); the end of the run always saves (the engine's rule, not this object's).
- Stop after the last step, or when a stop signal was agreed by every rank."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .errors import TrainError


@dataclass(frozen=True)
class Due:
    evaluate: bool = False
    save: bool = False
    stop: bool = False


@dataclass
class Cadence:
    total: int                                    # the run's last step
    eval_every: int = 0                           # steps; 0: not by steps
    save_every: int = 0                           # steps; 0: not by steps
    save_minutes: float = 0.0                     # 0: not by time
    saving: bool = False                          # there is an --output to save to
    clock: Optional[Callable[[int], bool]] = None   # the task's own (Task.eval_due): True = evaluate now
    clock_seconds: Callable[[], float] = time.monotonic
    last_save: float = field(default=None)

    def __post_init__(self):
        if self.last_save is None:
            self.last_save = self.clock_seconds()

    def after(self, step: int, stopped: bool) -> Due:
        """What to do after training `step` (1-based). The last step and a stop only stop: the
        end of the run evaluates (`at_end`) and saves on its own."""
        if stopped or step >= self.total:
            return Due(stop=True)
        own = self.clock is not None and self.clock(step)
        evaluate = bool(self.eval_every and step % self.eval_every == 0 or own)
        save = self.saving and bool(self.save_every and step % self.save_every == 0 or self.save_minutes
                                    and self.clock_seconds() - self.last_save >= 60 * self.save_minutes)
        return Due(evaluate=evaluate, save=save)

    def saved(self) -> None:
        self.last_save = self.clock_seconds()

    def at_end(self, step: int, first: int, stopped: bool) -> bool:
        """Evaluate once more at the end: a run that reached its last step, trained at least one step
        (a resumed run that was already done did not), was not stopped, and evaluates at all."""
        return bool((self.eval_every or self.clock) and step == self.total and step > first and not stopped)


def eval_interval(given: str | None, recipe_global: dict, per_epoch: int, has_split: bool, synthetic: bool) -> int:
    """Steps between evaluations: --eval-every (N steps, or Ne for N epochs), else the recipe's
    Global.eval_every (the same forms: iteration-based recipes count steps), else its
    Global.eval_interval epochs, when the data has a validation split; 0: never. Synthetic data (the
    smoke run) has nothing to learn: it evaluates only when asked."""
    if not has_split:
        return 0
    if given is None:
        if synthetic:
            return 0
        given = recipe_global.get("eval_every")
    if given is None:
        interval = recipe_global.get("eval_interval", 1)
        return max(1, int(round(float(interval) * per_epoch))) if interval else 0
    text = str(given).strip().lower()
    try:
        if text.endswith(("e", "epoch", "epochs")):
            return max(1, int(round(float(text.rstrip("epochs") or 1) * per_epoch)))
        return max(0, int(text))
    except ValueError:
        raise TrainError(f"--eval-every {given!r}: expected steps (200) or epochs (2e)") from None
