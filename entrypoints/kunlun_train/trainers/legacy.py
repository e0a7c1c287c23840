"""The loop of the tasks not yet on the engine (engine.py): their Trainer's step(), save() and
load(), one step at a time. It goes once every task is a tasks/ adapter."""
from __future__ import annotations

import platform
import time

import paddle

from .. import checkpoint, parallel, resources
from ..steplog import StepLog


def train(trainer_class, args, recipe: dict, world: parallel.World, device: str, say, started: float) -> int:
    model = recipe.get("Bundle", {}).get("model", "model")
    trainer = trainer_class(recipe, args.data, world)
    first, total = 1, int(recipe["Global"]["steps"])
    if args.resume:
        found = checkpoint.latest(args.output)
        if found is None:
            say(f"no checkpoint in {args.output}; starting from step 1")
        else:
            done, directory = found
            trainer.load(directory)
            first = done + 1
            say(f"resumed from {directory} (step {done})")
    say(f"training steps {first}..{total} on {trainer.describe_data()}, "
        f"batch {trainer.samples_per_step() * world.size:g}" + (f" ({world.size} workers)" if world.distributed else ""))
    # Every rank logs its steps (in a multi-node job each node's output is shown); rank 0's lines
    # carry the plain model tag and the job's summary, the others say which rank they are.
    log = StepLog(model, trainer.unit, device, started=started, rank=None if world.leader else world.rank)
    saved = None

    def save(step: int):
        if not world.leader:   # every rank holds the same weights; one writes them
            return None
        return checkpoint.save(args.output, step, trainer.save, {"model": model, "recipe": recipe,
                                                                 "workers": world.size})

    for step in range(first, total + 1):
        start = time.perf_counter()
        loss = parallel.mean(trainer.step(), world)
        log.step(step, total, loss, time.perf_counter() - start, trainer.samples_per_step() * world.size)
        if args.output and args.save_every and step % args.save_every == 0 and step != total:
            saved = save(step)
    if args.output and first <= total:
        saved = save(total)
    summary = log.summary(batch_size=trainer.samples_per_step() * world.size, threads=recipe["Global"]["threads"],
                          workers=world.size, data=trainer.describe_data(),
                          checkpoint=str(saved) if saved else None, paddle=paddle.__version__,
                          machine=platform.machine(), peak_rss_mb=resources.peak_rss_mb())
    return 0 if summary["loss_finite"] else 3
