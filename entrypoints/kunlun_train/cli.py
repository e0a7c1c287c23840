"""`docker run kunlun/<model> [options]`: parse, prepare (recipe, CPU threads, dataset checks),
then import Paddle and train. Errors a user can fix print one line and exit 2."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
import warnings
from pathlib import Path

from . import checkpoint, parallel, recipe as recipes, resources
from .device import choose as choose_device, facts as device_facts
from .errors import TrainError


def merge(base: dict, top: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in top.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _env_rank() -> int | None:
    value = os.environ.get("KUNLUN_RANK", os.environ.get("JOB_COMPLETION_INDEX"))
    return int(value) if value not in (None, "") else None


def parser(model: str, data_help: str = "a dataset directory", synthetic: str = "synthetic data") -> argparse.ArgumentParser:
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
    p.add_argument("--data", metavar="DIR", help=f"train on {data_help}. Default: {synthetic}")
    p.add_argument("--output", metavar="DIR", help="save checkpoints here (at the end and every --save-every steps)")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also save every N steps")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    p.add_argument("--threads", type=int, help="CPU threads in all (default: the CPUs this container may use)")
    p.add_argument("--devices", metavar="N|IDS", help="data-parallel workers through paddle.distributed.launch: "
                   "a count (2) or device ids (0,1). On CPU each is a process (gloo) sharing the threads")
    p.add_argument("--nnodes", type=int, default=int(os.environ.get("KUNLUN_NNODES", 1)), metavar="N",
                   help="hosts (or containers) in a multi-node job; each runs this image with the same "
                   "arguments and its own --rank (env KUNLUN_NNODES)")
    p.add_argument("--master", default=os.environ.get("KUNLUN_MASTER"), metavar="HOST:PORT",
                   help="rank 0's address for the launcher's rendezvous (env KUNLUN_MASTER); rank 0 serves it")
    p.add_argument("--rank", type=int, metavar="R", default=_env_rank(),
                   help="this node's rank, 0..N-1 (env KUNLUN_RANK, or JOB_COMPLETION_INDEX in a Kubernetes indexed Job)")
    p.add_argument("--require-xpu", action="store_true", help="fail instead of training on CPU when no "
                   "Kunlun XPU is visible (by default: XPUs when mapped in and Paddle supports them, else CPU)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="set a recipe key, PaddleClas style, e.g. -o Optimizer.learning_rate=0.1 (repeatable)")
    p.add_argument("--print-recipe", action="store_true", help="print the effective recipe as JSON and exit")
    p.add_argument("--recipe", default=os.environ.get("KUNLUN_RECIPE", "/opt/kunlun/recipe.json"),
                   help=argparse.SUPPRESS)
    return p


def prepare(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """Everything that needs no Paddle: arguments, the effective recipe, the thread count."""
    from .trainers import task
    model = os.environ.get("KUNLUN_MODEL", "model")
    recipe_path = os.environ.get("KUNLUN_RECIPE", "/opt/kunlun/recipe.json")
    raw = recipes.load(recipe_path) if os.path.exists(recipe_path) else {}
    spec = task(raw.get("Bundle", {}).get("task", "classification"))
    args = parser(model, spec.data_help, spec.synthetic).parse_args(argv)
    if args.recipe != recipe_path:
        raw = recipes.load(args.recipe)
    recipe = recipes.override(merge(spec.defaults, raw), args.override)
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
    args.choice = choose_device(device_facts(args.require_xpu))
    recipe["Global"]["device"] = args.choice.kind   # trainers pass it to their suite's device flags
    if args.devices is None and args.choice.kind == "xpu" and not parallel.World.from_env().distributed:
        args.devices = str(len(args.choice.ids))     # every visible card, numbered within the visible set
    args.device_ids = parallel.parse_devices(args.devices)
    args.nodes = parallel.parse_nodes(args.nnodes, args.master, args.rank)
    threads, why = (args.threads, "--threads") if args.threads else resources.usable_cpus()
    if not args.threads and spec.max_threads and threads > spec.max_threads:
        threads, why = spec.max_threads, f"{why}; this task runs fastest on {spec.max_threads} (--threads to change)"
    world = parallel.World.from_env()
    if world.distributed:   # a launched worker: launch() divided the threads among the workers
        why = "this worker's share of the container's CPUs"
    recipe["Global"]["threads"] = threads
    args.threads_reason = why
    return args, recipe


# Paddle's import-time notices that say nothing to a user of this image: it warns whenever
# OMP_NUM_THREADS > 1 (we set it on purpose) and when ccache, a compiler cache, is missing.
_IMPORT_NOISE = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY")


def import_paddle():
    warnings.filterwarnings("ignore", message="No ccache found")
    warnings.filterwarnings("ignore", message="Setuptools is replacing distutils")
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        import paddle
    for line in captured.getvalue().splitlines():
        if not line.startswith(_IMPORT_NOISE):
            print(line, file=sys.stderr)
    return paddle


def launch(args: argparse.Namespace, recipe: dict, argv: list[str]) -> int:
    """Re-run this entrypoint as one worker per device under Paddle's launcher and wait for it.
    The launcher shows rank 0's output; a failed worker's log tail is printed here."""
    import shutil
    import subprocess
    import tempfile

    devices = args.device_ids
    per_worker = max(1, recipe["Global"]["threads"] // len(devices))
    worker_args = parallel.worker_args(argv, per_worker)
    log_dir = tempfile.mkdtemp(prefix="kunlun-launch-")
    model = recipe.get("Bundle", {}).get("model", "model")
    where = f" on node {args.nodes.rank} of {args.nodes.nnodes} (master {args.nodes.master})" if args.nodes else ""
    print(f"[{model}] launching {len(devices)} data-parallel worker(s){where} (devices {','.join(devices)}, "
          f"{per_worker} threads each); worker logs in {log_dir}", flush=True)
    env = parallel.launcher_env()
    if not args.nodes:
        # One node: the workers talk over loopback. With --network none the container's own
        # hostname does not resolve, which is where gloo would look for its interface otherwise.
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    command = parallel.launch_command(devices, worker_args, log_dir, args.choice.kind, args.nodes)
    code = subprocess.run(command, env=env).returncode
    if code != 0:
        for log in sorted(Path(log_dir).glob("workerlog.*")):
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            print(f"--- {log.name} (last lines) ---", *tail, sep="\n", file=sys.stderr)
        print(f"error: a data-parallel worker failed (launcher exit {code})", file=sys.stderr, flush=True)
        return code
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def train(args: argparse.Namespace, recipe: dict, started: float) -> int:
    resources.apply_threads(recipe["Global"]["threads"])   # before Paddle is imported
    paddle = import_paddle()
    from .steplog import StepLog
    from .trainers import for_task

    world = parallel.World.from_env()
    bundle = recipe.get("Bundle", {})
    model = bundle.get("model", "model")
    if args.choice.kind == "xpu":
        # The launcher (or invoke run --xpus) sets FLAGS_selected_xpus: this process's card,
        # numbered within XPU_VISIBLE_DEVICES.
        selected = int(os.environ.get("FLAGS_selected_xpus", "0").split(",")[0])
        paddle.set_device(f"xpu:{selected}")
        device = f"xpu:{selected}"
    else:
        paddle.set_device("cpu")
        device = f"cpu x{recipe['Global']['threads']}"
    parallel.init(world)
    device += f", {world.size} workers" if world.distributed else ""
    say = (lambda text: print(f"[{model}] {text}", flush=True)) if world.leader else (lambda text: None)
    if args.choice.notice:
        say(args.choice.notice)
    say(f"device {device} ({args.threads_reason}); Paddle {paddle.__version__}")
    trainer = for_task(bundle.get("task", "classification"))(recipe, args.data, world)
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


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    try:
        argv = sys.argv[1:] if argv is None else argv
        args, recipe = prepare(argv)
        if args.print_recipe:
            import json
            print(json.dumps(recipe, indent=2, sort_keys=True))
            return 0
        if (len(args.device_ids) > 1 or args.nodes) and not parallel.World.from_env().distributed:
            return launch(args, recipe, argv)
        return train(args, recipe, started)
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
