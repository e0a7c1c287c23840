"""What this run is, apart from the recipe: one frozen object built once by cli.prepare from the
command line and the image, and all the engine reads of them. The recipe stays the suite's
configuration; the engine never reads an argparse Namespace. Paddle-free (unit-tested on the host)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

DEFAULT_TASK = "classification"   # an image whose recipe names no task (tests' recipe files)


@dataclass(frozen=True)
class RunOptions:
    command: str                          # train, eval, export, predict, check
    model: str                            # the image's model (recipe.json Bundle.model)
    task: str                             # its training task (Bundle.task)
    recipe: str                           # the named recipe this run uses
    data: Optional[str] = None            # the mounted dataset; None: synthetic (the smoke run)
    output: Optional[str] = None          # checkpoints, best/, metrics
    steps: Optional[int] = None           # --steps (else --epochs, else the recipe's length)
    epochs: Optional[float] = None
    resume: bool = False
    pretrained: Optional[str] = None
    export: Optional[str] = None          # export the final model here
    eval_every: Optional[str] = None      # --eval-every as given: N steps or Ne epochs
    save_every: int = 0
    save_minutes: float = 0.0
    keep: int = 5
    workers: Optional[int] = None         # DataLoader worker processes per rank
    threads: int = 1                      # CPU threads of this process
    device: str = "cpu"                   # the device kind: cpu or xpu
    smoke: bool = False                   # the recipe's smoke overrides were applied

    @classmethod
    def from_args(cls, args, model: str, task: str, threads: int, device: str, smoke: bool) -> "RunOptions":
        """From a parsed command line (commands lack the flags they do not take: their defaults apply)."""
        get = lambda name, default=None: getattr(args, name, default)   # noqa: E731
        return cls(command=args.command, model=model, task=task, recipe=args.recipe_name, data=get("data"),
                   output=get("output"), steps=get("steps"), epochs=get("epochs"), resume=bool(get("resume", False)),
                   pretrained=get("pretrained"), export=get("export"), eval_every=get("eval_every"),
                   save_every=get("save_every", 0) or 0, save_minutes=get("save_minutes", 0.0) or 0.0,
                   keep=get("keep", 5), workers=get("workers"), threads=threads, device=device, smoke=smoke)
