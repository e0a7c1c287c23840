"""`docker run kunlun/<model> [train|eval|export|predict] [options]`: parse, prepare (recipe, CPU threads,
dataset checks), then import Paddle and run the engine. Errors a user can fix print one line and exit 2."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

from . import checkpoint, parallel, recipe as recipes, resources, schema
from .options import DEFAULT_TASK, RunOptions
from .device import choose as choose_device, facts as device_facts
from .errors import TrainError

COMMANDS = {
    "train": "train the model (the default command)",
    "eval": "evaluate weights (a checkpoint or .pdparams) on the dataset's validation split",
    "export": "write a Paddle inference model (inference.json + .pdiparams + inference.yml) from weights",
    "predict": "run an exported inference model with paddle.inference on images, files or a directory",
    "serve": "serve an exported model over HTTP, the Open Inference Protocol (KServe V2), with paddle.inference "
             "(`serve --help` explains)",
    "check": "print this container's environment stamp (Paddle build, XPU runtime and driver, device nodes, "
             "visible cards) and run paddle.utils.run_check()",
}
RECIPE_FILE = "/opt/kunlun/recipe.json"


def _env_rank() -> int | None:
    value = os.environ.get("KUNLUN_RANK", os.environ.get("JOB_COMPLETION_INDEX"))
    return int(value) if value not in (None, "") else None


def _common(p: argparse.ArgumentParser, names: list[str]) -> None:
    """Options every command takes: the recipe, threads, devices and nodes."""
    p.add_argument("--recipe", metavar="NAME", help=f"which recipe: {', '.join(names)} (default: {names[0]})")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="set a recipe key, PaddleClas style, e.g. -o Optimizer.lr.learning_rate=0.1 (repeatable; "
                        "--print-recipe shows the keys)")
    p.add_argument("--print-recipe", action="store_true",
                   help="print the recipe (upstream values, smoke overrides, effective values) as JSON and exit")
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
    p.add_argument("--require-xpu", action="store_true", help="fail instead of running on CPU when no "
                   "Kunlun XPU is visible (by default: XPUs when mapped in and Paddle supports them, else CPU)")
    p.add_argument("--workers", type=int, metavar="N", help="DataLoader worker processes per rank (default: "
                   "recipe DataLoader.workers; auto = half this rank's CPUs, 1..4, none for synthetic data)")
    p.add_argument("--batch-size", type=int, help="samples per step and rank (recipe DataLoader.batch_size)")
    p.add_argument("--recipe-file", default=os.environ.get("KUNLUN_RECIPE", RECIPE_FILE), help=argparse.SUPPRESS)


def _dirs(p: argparse.ArgumentParser, data: str, output: str) -> None:
    p.add_argument("--data", metavar="DIR", help=data)
    p.add_argument("--output", metavar="DIR", help=output)


def _vocab(p: argparse.ArgumentParser) -> None:
    """Language models: the tokenizer's vocabulary (recipe Tokenizer.vocab_file)."""
    p.add_argument("--vocab", metavar="FILE", help="a WordPiece vocab.txt to tokenize with, e.g. the one published "
                   "with the --pretrained weights (a relative path is also looked for under --data). Default: "
                   "the checkpoint's or exported model's own, else one built from the training text")


def parser(model: str, data_help: str, synthetic: str, names: list[str],
           examples: str | None = None, vocabulary: bool = False) -> argparse.ArgumentParser:
    """examples: the task's own --help examples ({model} filled in), instead of the dataset ones;
    vocabulary: the commands take --vocab FILE (tasks that tokenize text)."""
    p = argparse.ArgumentParser(
        prog=f"docker run kunlun/{model}",
        description=f"Train, evaluate, export and predict with {model}, the way its suite trains it. Without "
                    f"--data a short smoke run on {synthetic}. Commands: "
                    + "; ".join(f"{c}: {h}" for c, h in COMMANDS.items()) + ".",
        epilog="examples:\n"
               f"  docker run --rm kunlun/{model}                                   # smoke: a few steps, synthetic data\n"
               f"  docker run --rm -v $PWD/flowers:/data:ro -v $PWD/out:/output kunlun/{model} \\\n"
               f"      --data /data --output /output --recipe {names[-1]} --epochs 5\n"
               f"  docker run --rm -v ... kunlun/{model} --data /data --output /output --resume\n"
               f"  docker run --rm -v ... kunlun/{model} eval --data /data --weights /output/best\n"
               f"  docker run --rm -v ... kunlun/{model} export --weights /output/best --to /output/inference\n"
               f"  docker run --rm -v ... kunlun/{model} predict --model /output/inference --input /data/jpg\n"
               f"  invoke run {model} --data D --output O -- --epochs 5   (mounts filled in for you)\n"
               f"  invoke run {model} --data D --output O -- eval         (O/best on D's validation split)\n"
               f"  invoke run {model} --output O -- export                (O/best -> O/inference)\n"
               f"  invoke run {model} --data D --output O -- predict      (O/inference on D's images)\n"
               f"`docker run kunlun/{model} COMMAND --help` explains a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if examples:
        p.epilog = "examples:\n" + examples.format(model=model)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help=COMMANDS["train"], description=COMMANDS["train"])
    _common(train, names)
    _dirs(train, f"train on {data_help}. Default: {synthetic} (smoke)",
          "save checkpoints (ckpt-NNNNNN/, best/), metrics.jsonl and VisualDL logs (vdl/) here")
    train.add_argument("--steps", type=int, help="train this many steps (the schedule is fitted to them); with "
                       "--resume, counted from the start of the first run")
    train.add_argument("--epochs", type=float, help="train this many epochs of the data (the schedule is fitted to "
                       "them). Default: the recipe's Global.epochs, or its smoke steps without --data")
    train.add_argument("--save-every", type=int, default=0, metavar="N", help="also save a checkpoint every N steps")
    train.add_argument("--save-minutes", type=float, default=10.0, metavar="M",
                       help="also save a checkpoint when M minutes have passed since the last one (default 10; 0: off)")
    train.add_argument("--keep", type=int, default=5, metavar="K",
                       help="keep the newest K ckpt-* directories, remove older ones (default 5; 0: keep all; "
                            "best/ is always kept)")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    train.add_argument("--eval-every", metavar="N|Ne", help="evaluate on the validation split every N steps, or every "
                       "N epochs with Ne (default: the recipe's Global.eval_interval epochs when the data has one)")
    train.add_argument("--pretrained", metavar="FILE", help="start from these weights (.pdparams, e.g. the suite's "
                       "published ones, or a checkpoint directory); tensors of another shape are skipped and named")
    train.add_argument("--export", metavar="DIR", help="at the end, also export an inference model here")

    evaluate = sub.add_parser("eval", help=COMMANDS["eval"], description=COMMANDS["eval"])
    _common(evaluate, names)
    _dirs(evaluate, f"the dataset: {data_help}", "a training output directory: its best/ is the default --weights")
    evaluate.add_argument("--weights", metavar="PATH", help="a checkpoint directory or .pdparams file (default: OUTPUT/best)")
    evaluate.add_argument("--predictions", metavar="FILE", help="also write every sample's prediction (JSON lines)")

    export = sub.add_parser("export", help=COMMANDS["export"], description=COMMANDS["export"])
    _common(export, names)
    _dirs(export, argparse.SUPPRESS, "a training output directory: default --weights OUTPUT/best, --to OUTPUT/inference")
    export.add_argument("--weights", metavar="PATH", help="a checkpoint directory or .pdparams file (default: OUTPUT/best)")
    export.add_argument("--to", metavar="DIR", help="where the inference model goes (default: OUTPUT/inference)")

    predict = sub.add_parser("predict", help=COMMANDS["predict"], description=COMMANDS["predict"])
    _common(predict, names)
    _dirs(predict, "default --input", "a training output directory: its inference/ is the default --model")
    predict.add_argument("--model", metavar="DIR", help="an exported inference model directory (default: OUTPUT/inference)")
    predict.add_argument("--input", metavar="PATH", action="append",
                         help="an input file or a directory of them (repeatable; default: DATA)")
    predict.add_argument("--labels", metavar="FILE", help="label names: '<id> <name>' or one name per line")
    predict.add_argument("--topk", type=int, default=None, metavar="K", help="how many classes to show")
    predict.add_argument("--save", metavar="FILE", help="also write the results as JSON lines")
    predict.add_argument("--threshold", type=float, metavar="T", help="detection: keep boxes scoring at least T "
                         "(default: the exported inference.yml's draw_threshold, 0.5)")
    predict.add_argument("--masks", metavar="DIR", help="segmentation: write each input's predicted mask here, a PNG "
                         "of class ids (default: OUTPUT/masks, else masks/ beside --save)")

    check = sub.add_parser("check", help=COMMANDS["check"], description=COMMANDS["check"])
    _common(check, names)
    _dirs(check, argparse.SUPPRESS, argparse.SUPPRESS)
    if vocabulary:
        for command in (train, evaluate, export, predict):
            _vocab(command)
    return p


def split_command(argv: list[str]) -> list[str]:
    """`docker run IMAGE --steps 5` means train: the command may be left out."""
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help")):
        return argv
    return ["train", *argv]


def _defaults(args: argparse.Namespace) -> None:
    """eval, export and predict default to a training run's --output (and predict to --data), so
    `invoke run MODEL --data D --output O -- eval` (or export, predict) needs nothing more."""
    out = Path(args.output) if args.output else None
    needed = {"eval": [("weights", "best")], "export": [("weights", "best"), ("to", "inference")],
              "predict": [("model", "inference")]}.get(args.command, [])
    for name, default in needed:
        if getattr(args, name) is None:
            if out is None:
                raise TrainError(f"{args.command} needs --{name} (or --output, a training run's directory)")
            setattr(args, name, str(out / default))
    if args.command == "predict" and not args.input:
        if not args.data:
            raise TrainError("predict needs --input FILE|DIR (or --data DIR)")
        args.input = [args.data]


def prepare(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """Everything that needs no Paddle: arguments, the effective recipe, the thread count."""
    from .tasks import spec as task_spec
    recipe_path = os.environ.get("KUNLUN_RECIPE", RECIPE_FILE)
    found = recipes.load(recipe_path) if os.path.exists(recipe_path) else None
    names = list(found.recipes) if found else ["default"]
    bundle = found.bundle if found else {}
    # The one place the model's name comes from: the image's recipe.json, else the image's env.
    model = bundle.get("model") or os.environ.get("KUNLUN_MODEL", "model")
    spec = task_spec(bundle.get("task", DEFAULT_TASK))
    args = parser(model, spec.data_help, spec.synthetic, names, spec.examples, spec.vocabulary) \
        .parse_args(split_command(argv))
    if args.recipe_file != recipe_path or found is None:
        found = recipes.load(args.recipe_file)
        model = found.bundle.get("model") or model
    task = found.bundle.get("task", DEFAULT_TASK)
    if getattr(args, "steps", None) is not None and getattr(args, "epochs", None) is not None:
        raise TrainError("--steps and --epochs both say how long the run is: give one")
    _defaults(args)
    args.recipe_name, upstream = found.select(args.recipe)
    trained = checkpoint.recipe_of(getattr(args, "weights", None))
    if trained is not None and args.recipe is None:
        # eval/export of our own checkpoint: the recipe it was trained with (class count, input size, ...)
        name, upstream = trained
        args.recipe_name = name or args.recipe_name
    smoke = getattr(args, "data", None) is None and args.command in ("train", "eval") and bool(found.smoke)
    effective = recipes.merge(upstream, found.smoke) if smoke else upstream
    effective = recipes.override(effective, args.override)
    if getattr(args, "vocab", None):
        effective.setdefault("Tokenizer", {})["vocab_file"] = args.vocab
    args.recipe_view = {"recipe": args.recipe_name, "upstream": upstream, "smoke": found.smoke or None,
                        "smoke_applied": smoke, "effective": effective}
    if getattr(args, "steps", None) is not None:
        effective["Global"]["steps"] = args.steps
    if args.batch_size is not None:
        effective["DataLoader"]["batch_size"] = args.batch_size
    for flag, least in (("steps", 1), ("epochs", 0.001), ("batch_size", 1), ("threads", 1), ("workers", 0)):
        value = getattr(args, flag, None)
        if value is not None and value < least:
            raise TrainError(f"--{flag.replace('_', '-')} must be at least {least:g}")
    wrong = schema.problems(effective, task) + schema.size_problems(effective, found.bundle.get("input_size"), model)
    if wrong:
        raise TrainError("the recipe has " + "; ".join(f"{'.'.join(map(str, at))}: {why}" for at, why in wrong)
                         + " (-o KEY=VALUE sets a key; --print-recipe shows them)")
    if getattr(args, "resume", False) and not args.output:
        raise TrainError("--resume needs --output (where the checkpoints are)")
    args.choice = choose_device(device_facts(args.require_xpu))
    if args.devices is None and args.choice.kind == "xpu" and not parallel.World.from_env().distributed:
        args.devices = str(len(args.choice.ids))     # every visible card, numbered within the visible set
    args.device_ids = parallel.parse_devices(args.devices)
    args.nodes = parallel.parse_nodes(args.nnodes, args.master, args.rank)
    threads, why = (args.threads, "--threads") if args.threads else resources.usable_cpus()
    if not args.threads and spec.max_threads and threads > spec.max_threads:
        threads, why = spec.max_threads, f"{why}; this task runs fastest on {spec.max_threads} (--threads to change)"
    if parallel.World.from_env().distributed:   # a launched worker: launch() divided the threads among the workers
        why = "this worker's share of the container's CPUs"
    args.threads_reason = why
    args.spec = spec
    args.notices = []
    if getattr(args, "data", None) and args.command in ("train", "eval"):
        from .tasks import check_data, class_count
        if trained is None:   # a checkpoint's recipe already has the count it was trained with
            given = any(o.split("=", 1)[0].strip() == spec.classes for o in args.override)
            notice = class_count(task, effective, args.data, explicit=given)
            args.notices += [notice] if notice else []
        check_data(task, effective, args.data, args.command)   # not after Paddle
    args.options = RunOptions.from_args(args, model, task, threads, args.choice.kind, smoke)
    return args, effective


# Paddle's import-time notices that say nothing to a user of this image: it warns whenever
# OMP_NUM_THREADS > 1 (we set it on purpose) and when ccache, a compiler cache, is missing.
_IMPORT_NOISE = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY")


def import_paddle():
    os.environ.setdefault("GLOG_minloglevel", "1")   # Paddle's C++ warnings stay, its info lines go
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
    per_worker = max(1, args.options.threads // len(devices))
    worker_args = parallel.worker_args(split_command(argv), per_worker)
    log_dir = tempfile.mkdtemp(prefix="kunlun-launch-")
    model = args.options.model
    where = f" on node {args.nodes.rank} of {args.nodes.nnodes} (master {args.nodes.master})" if args.nodes else ""
    print(f"[{model}] launching {len(devices)} data-parallel worker(s){where} (devices {','.join(devices)}, "
          f"{per_worker} threads each); worker logs in {log_dir}", flush=True)
    env = parallel.launcher_env()
    chosen = parallel.collective_env(args.nodes)   # loopback on one node, the route to the master on several
    env.update(chosen)
    if chosen:
        print(f"[{model}] collectives on {next(iter(chosen.values()))} ({', '.join(chosen)})", flush=True)
    command = parallel.launch_command(devices, worker_args, log_dir, args.choice.kind, args.nodes)
    launcher = subprocess.Popen(command, env=env)
    received: list[int] = []

    def forward(signum, frame):
        # docker stop signals only this process: pass it on, the launcher passes it to the workers,
        # which finish their step, save and exit.
        received.append(signum)
        launcher.send_signal(signum)
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, forward)
    code = launcher.wait()
    if received:
        # The launcher stops echoing rank 0's log when it is signalled: its last lines (the step it
        # stopped after, the checkpoint) are shown from the log itself.
        lines = (Path(log_dir) / "workerlog.0").read_text(errors="replace").splitlines() \
            if (Path(log_dir) / "workerlog.0").is_file() else []
        print(*[line for line in lines if "stopped by" in line or line.startswith('{"event": "summary"')], sep="\n", flush=True)
        print(f"[{model}] stopped by {signal.Signals(received[0]).name}; worker logs in {log_dir}", flush=True)
        return 128 + received[0]
    if code != 0:
        for log in sorted(Path(log_dir).glob("workerlog.*")):
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            print(f"--- {log.name} (last lines) ---", *tail, sep="\n", file=sys.stderr)
        print(f"error: a data-parallel worker failed (launcher exit {code})", file=sys.stderr, flush=True)
        return code
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def run(args: argparse.Namespace, recipe: dict, started: float) -> int:
    """Import Paddle, pick the device, and run the command."""
    resources.apply_threads(args.options.threads)   # before Paddle is imported
    paddle = import_paddle()
    from .tasks import adapter

    world = parallel.World.from_env()
    model = args.options.model
    if args.choice.kind == "xpu":
        # The launcher (or invoke run --xpus) sets FLAGS_selected_xpus: this process's card,
        # numbered within XPU_VISIBLE_DEVICES.
        selected = int(os.environ.get("FLAGS_selected_xpus", "0").split(",")[0])
        paddle.set_device(f"xpu:{selected}")
        device = f"xpu:{selected}"
    else:
        paddle.set_device("cpu")
        device = f"cpu x{args.options.threads}"
    parallel.init(world)
    device += f", {world.size} workers" if world.distributed else ""
    say = (lambda text: print(f"[{model}] {text}", flush=True)) if world.leader else (lambda text: None)
    if args.choice.notice and args.command != "predict":
        say(args.choice.notice)
    say(f"device {device} ({args.threads_reason}); Paddle {paddle.__version__}; recipe {args.recipe_name}")
    for notice in args.notices:
        say(notice)
    if args.command == "check":
        from . import check
        return check.run(paddle, say)
    task_class = adapter(args.options.task)
    if args.command == "predict":
        from . import predict
        return predict.run(task_class(recipe, None, world, args.options), args, device, say)
    from .engine import Engine
    task = task_class(recipe, getattr(args, "data", None), world, args.options)
    engine = Engine(task, recipe, args.options, world, device, say)
    if args.command == "eval":
        engine.evaluate_only(args.weights, args.predictions, started)
        return 0
    if args.command == "export":
        engine.export(engine.model(args.weights, strict=True), Path(args.to), args.weights)
        return 0
    summary = engine.train(started)
    if engine.stop_signal:
        return 128 + engine.stop_signal        # 143 for SIGTERM, as a process killed by it
    return 0 if summary["loss_finite"] else 3


def serve(argv: list[str]) -> int:
    """`serve`: its own flags (serving/cli.py); the export's task (inference.yml, else this image's)
    gives the predict route."""
    from .serving import cli as serving_cli, routes
    path = os.environ.get("KUNLUN_RECIPE", RECIPE_FILE)
    task = recipes.load(path).bundle.get("task") if os.path.exists(path) else None
    return serving_cli.main(argv, handler=lambda directory: routes.for_export(directory, task))


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    try:
        argv = sys.argv[1:] if argv is None else argv
        scratch = resources.writable_scratch()   # before anything imports Paddle
        if argv[:1] == ["serve"]:
            return serve(argv[1:])
        args, recipe = prepare(argv)
        if scratch and not parallel.World.from_env().distributed:
            print(f"[{args.options.model}] {scratch}", flush=True)
        if args.print_recipe:
            # In the recipe's own order: a segmentation recipe's transforms apply in the order written.
            print(json.dumps(args.recipe_view, indent=2))
            return 0
        if (len(args.device_ids) > 1 or args.nodes) and not parallel.World.from_env().distributed:
            if args.command in ("export", "predict", "check"):
                raise TrainError(f"--devices/--nnodes: `{args.command}` runs in one process")
            return launch(args, recipe, argv)
        return run(args, recipe, started)
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except OSError as exc:   # a file the run needs and cannot read or write: the OS's words, one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where} (the container runs as uid {os.getuid()})", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
