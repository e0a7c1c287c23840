"""`docker run kunlun/<model> [options]`: parse, prepare (recipe, CPU threads, dataset checks),
then import Paddle and train. Errors a user can fix print one line and exit 2."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings

from . import checkpoint, recipe as recipes, resources
from .errors import TrainError


def merge(base: dict, top: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in top.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def parser(model: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"docker run kunlun/{model}",
        description=f"Train {model} from random initialisation for a bounded number of steps, on synthetic "
                    "data or on a mounted dataset. Prints one line per step and a JSON summary line.",
        epilog="examples:\n"
               f"  docker run --rm kunlun/{model} --steps 20\n"
               f"  docker run --rm -v $PWD/flowers:/data:ro kunlun/{model} --data /data -o Arch.class_num=102\n"
               f"  docker run --rm -v $PWD/out:/output kunlun/{model} --output /output --resume\n"
               f"  invoke run {model} --data DIR --output DIR -- --steps 5   (mounts filled in for you)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, help="total training steps (recipe Global.steps); with --resume, "
                   "counted from the start of the first run")
    p.add_argument("--batch-size", type=int, help="samples per step (recipe DataLoader.batch_size)")
    p.add_argument("--data", metavar="DIR", help="dataset directory; classification: a train_list.txt with "
                   "'<image path> <label>' lines (flowers102 / ImageNet style). Default: synthetic data")
    p.add_argument("--output", metavar="DIR", help="save checkpoints here (at the end and every --save-every steps)")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also save every N steps")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    p.add_argument("--threads", type=int, help="CPU threads (default: the CPUs this container may use)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="set a recipe key, PaddleClas style, e.g. -o Optimizer.learning_rate=0.1 (repeatable)")
    p.add_argument("--print-recipe", action="store_true", help="print the effective recipe as JSON and exit")
    p.add_argument("--recipe", default=os.environ.get("KUNLUN_RECIPE", "/opt/kunlun/recipe.json"),
                   help=argparse.SUPPRESS)
    return p


def prepare(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """Everything that needs no Paddle: arguments, the effective recipe, the thread count."""
    from .trainers import DEFAULTS
    model = os.environ.get("KUNLUN_MODEL", "model")
    args = parser(model).parse_args(argv)
    raw = recipes.load(args.recipe)
    bundle = raw.get("Bundle", {})
    recipe = recipes.override(merge(DEFAULTS.get(bundle.get("task"), {}), raw), args.override)
    if args.steps is not None:
        recipe["Global"]["steps"] = args.steps
    if args.batch_size is not None:
        recipe["DataLoader"]["batch_size"] = args.batch_size
    if recipe["Global"]["steps"] < 1 or recipe["DataLoader"]["batch_size"] < 1:
        raise TrainError("--steps and --batch-size must be at least 1")
    if args.resume and not args.output:
        raise TrainError("--resume needs --output (where the checkpoints are)")
    if args.threads is not None and args.threads < 1:
        raise TrainError("--threads must be at least 1")
    threads, why = (args.threads, "--threads") if args.threads else resources.usable_cpus()
    recipe["Global"]["threads"] = threads
    args.threads_reason = why
    return args, recipe


# Paddle's import-time notices that say nothing to a user of this image: it warns whenever
# OMP_NUM_THREADS > 1 (we set it on purpose) and when ccache, a compiler cache, is missing.
_IMPORT_NOISE = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY")


def import_paddle():
    warnings.filterwarnings("ignore", message="No ccache found")
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        import paddle
    for line in captured.getvalue().splitlines():
        if not line.startswith(_IMPORT_NOISE):
            print(line, file=sys.stderr)
    return paddle


def train(args: argparse.Namespace, recipe: dict, started: float) -> int:
    resources.apply_threads(recipe["Global"]["threads"])   # before Paddle is imported
    paddle = import_paddle()
    from .steplog import StepLog
    from .trainers import for_task

    bundle = recipe.get("Bundle", {})
    model = bundle.get("model", "model")
    paddle.set_device("cpu")
    device = f"cpu x{recipe['Global']['threads']}"
    print(f"[{model}] device {device} ({args.threads_reason}); Paddle {paddle.__version__}", flush=True)
    trainer = for_task(bundle.get("task", "classification"))(recipe, args.data)
    first, total = 1, int(recipe["Global"]["steps"])
    if args.resume:
        found = checkpoint.latest(args.output)
        if found is None:
            print(f"[{model}] no checkpoint in {args.output}; starting from step 1", flush=True)
        else:
            done, directory = found
            trainer.load(directory)
            first = done + 1
            print(f"[{model}] resumed from {directory} (step {done})", flush=True)
    print(f"[{model}] training steps {first}..{total} on {trainer.describe_data()}, "
          f"batch {trainer.samples_per_step()}", flush=True)
    log = StepLog(model, trainer.unit, device, started=started)
    saved = None

    def save(step: int):
        return checkpoint.save(args.output, step, trainer.save, {"model": model, "recipe": recipe})

    for step in range(first, total + 1):
        start = time.perf_counter()
        loss = trainer.step()
        log.step(step, total, loss, time.perf_counter() - start, trainer.samples_per_step())
        if args.output and args.save_every and step % args.save_every == 0 and step != total:
            saved = save(step)
    if args.output and first <= total:
        saved = save(total)
    summary = log.summary(batch_size=trainer.samples_per_step(), threads=recipe["Global"]["threads"],
                          data=trainer.describe_data(), checkpoint=str(saved) if saved else None,
                          paddle=paddle.__version__)
    return 0 if summary["loss_finite"] else 3


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    try:
        args, recipe = prepare(sys.argv[1:] if argv is None else argv)
        if args.print_recipe:
            import json
            print(json.dumps(recipe, indent=2, sort_keys=True))
            return 0
        return train(args, recipe, started)
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
