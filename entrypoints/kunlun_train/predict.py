"""`predict`: run an exported inference model (engine.export) with Paddle Inference, the way it is
deployed: `paddle.inference.Config` on the model files, the XPU through `Config.enable_xpu` when
cards are visible and Paddle has XPU support, else the CPU with this container's threads. The task
turns inputs into arrays and outputs into results, from the inference.yml written at export.

Every image prints the same format: one line per input, `[model] predict <input> | <result>`, and with
--save one JSON object per input."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import TrainError


class Predictor:
    """paddle.inference's predictor as a function: arrays in, arrays out."""

    def __init__(self, directory: Path, device: str, threads: int):
        from paddle import inference
        model = directory / "inference.json"
        if not model.is_file():
            model = directory / "inference.pdmodel"   # Paddle 2.x format
        params = directory / "inference.pdiparams"
        if not model.is_file() or not params.is_file():
            raise TrainError(f"--model {directory}: no exported model there (expected inference.json and "
                             "inference.pdiparams; write them with `export` or `--export DIR`)")
        config = inference.Config(str(model), str(params))
        if device.startswith("xpu"):
            config.enable_xpu()
            config.set_xpu_device_id(int(os.environ.get("FLAGS_selected_xpus", "0").split(",")[0]))
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)

    def __call__(self, *arrays):
        for name, array in zip(self.predictor.get_input_names(), arrays):
            self.predictor.get_input_handle(name).copy_from_cpu(array)
        self.predictor.run()
        return [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.predictor.get_output_names()]

    def named(self, inputs: dict) -> dict:
        """Inputs by name in, outputs by name (in the model's order) out: what a task's Inference and
        the server's backend exchange."""
        for name, array in inputs.items():
            self.predictor.get_input_handle(name).copy_from_cpu(array)
        self.predictor.run()
        return {n: self.predictor.get_output_handle(n).copy_to_cpu() for n in self.predictor.get_output_names()}


def inputs(paths: list[str], suffixes: tuple[str, ...]) -> list[Path]:
    """Files given, and the files of the given directories with a suffix the task reads, sorted."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif path.is_file():
            found.append(path)
        else:
            raise TrainError(f"--input {given}: no such file or directory")
    if not found:
        raise TrainError(f"--input {' '.join(paths)}: no input files (looked for {', '.join(suffixes)})")
    return found


def labels(path: str | None) -> dict[int, str] | None:
    """'<id> <name>' lines, or one name per line (the line number is the id)."""
    if not path:
        return None
    file = Path(path)
    if not file.is_file():
        raise TrainError(f"--labels {path}: no such file")
    rows = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    numbered = all(r.split(maxsplit=1)[0].isdigit() and len(r.split(maxsplit=1)) == 2 for r in rows)
    return {int(r.split(maxsplit=1)[0]): r.split(maxsplit=1)[1] for r in rows} if numbered \
        else dict(enumerate(rows))


def run(task, args, device: str, say) -> int:
    directory = Path(args.model)
    config_file = directory / "inference.yml"
    if not config_file.is_file():
        raise TrainError(f"--model {directory}: no inference.yml (written by `export` beside the model)")
    config = json.loads(config_file.read_text())
    predictor = Predictor(directory, device, task.options.threads)
    files = inputs(args.input, task.input_suffixes)
    names = labels(args.labels)
    results = []
    for path, result, line in task.predict(predictor, config, files, names, args):
        say(f"predict {path} | {line}")
        results.append({"input": str(path), **result})
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text("".join(json.dumps(r) + "\n" for r in results))
        say(f"wrote {len(results)} results to {args.save}")
    print(json.dumps({"event": "predict summary", "model": task.options.model,
                      "inputs": len(results), "device": device}), flush=True)
    return 0


def masks_directory(args) -> Path:
    """--masks DIR, else OUTPUT/masks, else masks/ beside --save: predict always says where they went."""
    if getattr(args, "masks", None):
        return Path(args.masks)
    if getattr(args, "output", None):
        return Path(args.output) / "masks"
    if getattr(args, "save", None):
        return Path(args.save).parent / "masks"
    raise TrainError("predict writes a mask PNG per image: give --masks DIR (or --output DIR)")


def mask_name(path: Path, roots: list[Path]) -> Path:
    """The input's path under the directory it was found in (a file given alone: its name), as .png."""
    for root in roots:
        if root in path.parents:
            return path.relative_to(root).with_suffix(".png")
    return Path(path.name).with_suffix(".png")
