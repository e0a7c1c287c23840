"""The paddle.inference backend: one Predictor per worker, built in that worker's thread.

CPU: oneDNN on (Paddle's default; PaddleClas keeps 10 cached shapes to bound its memory) or off, and
math threads so that workers x threads <= the CPUs this container may use (cgroup quota, affinity).
XPU: one predictor per visible card (`enable_xpu`, `set_xpu_device_id` with the card's index in
XPU_VISIBLE_DEVICES, which Paddle numbers from 0). Paddle is imported only when a predictor is built."""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import device as devices
from ..errors import TrainError
from ..resources import usable_cpus
from .protocol import DTYPES, TensorSpec, datatype_of, example_inputs

# One predictor built at a time: two create_predictor calls in two threads segfaulted in PIR's
# dialect registration (IrContext::GetOrRegisterDialect), measured with 3.2.2 on CPU.
BUILD = threading.Lock()

# paddle.inference.DataType names -> V2 datatypes
PADDLE_TYPES = {"FLOAT32": "FP32", "FLOAT16": "FP16", "FLOAT64": "FP64", "BFLOAT16": "FP32", "INT64": "INT64",
                "INT32": "INT32", "INT16": "INT16", "INT8": "INT8", "UINT8": "UINT8", "BOOL": "BOOL"}


def model_files(directory: Path) -> tuple[Path, Path]:
    """inference.json (Paddle 3 PIR) or inference.pdmodel (2.x), and inference.pdiparams."""
    model = directory / "inference.json"
    if not model.is_file():
        model = directory / "inference.pdmodel"
    params = directory / "inference.pdiparams"
    if not directory.is_dir():
        raise TrainError(f"--model {directory}: no such directory (mount the training output, e.g. "
                         "-v OUT:/output, or point --model at an export)")
    if not model.is_file() or not params.is_file():
        raise TrainError(f"--model {directory}: no exported model there (expected inference.json and "
                         "inference.pdiparams; write them with `export` or `--export DIR`)")
    return model, params


def declared_shapes(model: Path) -> dict[str, list[int]]:
    """Input name -> the InputSpec's shape, from the PIR program's data ops. Paddle 3.2.2's Python API
    has no other way: an input handle's shape() is [0] until it is fed (measured)."""
    return {name: shape for name, (shape, _) in declared(model).items()}


def declared(model: Path) -> dict[str, tuple[list[int], str | None]]:
    """Input name -> (the InputSpec's shape, its dtype: "int64", ...) from the PIR program's data ops.
    The dtype too: before it is fed, an input handle's type() is FLOAT32 whatever the InputSpec said
    (measured on 3.2.2 with BERT's int64 input_ids), and int64 ids sent as float32 fail in the model."""
    if model.suffix != ".json":
        return {}
    found: dict[str, tuple[list[int], str | None]] = {}

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("#", "")).endswith(".data") and isinstance(node.get("A"), list):
                attrs = {a.get("N"): (a.get("AT") or {}).get("D") for a in node["A"] if isinstance(a, dict)}
                if isinstance(attrs.get("name"), str) and isinstance(attrs.get("shape"), list):
                    dtype = attrs.get("dtype")
                    found[attrs["name"]] = (attrs["shape"], dtype if isinstance(dtype, str) else None)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.loads(model.read_text()))
    return found


@dataclass(frozen=True)
class Plan:
    """Where the predictors run: `workers` of them, each on `cards[i]` (XPU) or with `threads` (CPU)."""
    device: str                 # "cpu" or "xpu"
    workers: int
    threads: int
    cards: tuple[int, ...] = ()
    onednn: bool = True
    why: str = ""


def plan(workers: int | None, threads: int | None, onednn: bool = True, xpus: list[str] | None = None,
         paddle_has_xpu: bool | None = None, cpus: tuple[int, str] | None = None) -> Plan:
    """The predictors for this container: one per visible Kunlun card, else CPU workers x threads
    within the CPUs it may use (an explicit request beyond them is an error, not a slowdown)."""
    xpus = devices.visible_xpus() if xpus is None else xpus
    paddle_has_xpu = devices.paddle_has_xpu() if paddle_has_xpu is None else paddle_has_xpu
    if xpus and paddle_has_xpu:
        if workers not in (None, len(xpus)):
            raise TrainError(f"--workers {workers}: with Kunlun cards visible there is one predictor per card "
                             f"({len(xpus)}: {','.join(xpus)}); choose the cards with XPU_VISIBLE_DEVICES")
        return Plan("xpu", len(xpus), threads or 1, tuple(range(len(xpus))), onednn,
                    f"{len(xpus)} Kunlun XPU(s): {','.join(xpus)}")
    count, why = cpus or usable_cpus()
    workers = workers or 1
    threads = threads or max(1, count // workers)
    if workers < 1 or threads < 1:
        raise TrainError("--workers and --threads must be at least 1")
    if workers * threads > count:
        raise TrainError(f"--workers {workers} x --threads {threads} = {workers * threads} threads, but this "
                         f"container may use {count} CPU(s) ({why}): lower one of them")
    return Plan("cpu", workers, threads, (), onednn, f"CPU, {why}")


def onednn_available() -> bool:
    """Whether this Paddle build has oneDNN: the aarch64 CPU wheel has none (its Config lacks the
    oneDNN settings, measured with 3.2.2 under emulation), so the server runs without it there."""
    from paddle import inference
    return hasattr(inference.Config, "set_mkldnn_cache_capacity")


class PaddleBackend:
    """A Predictor as arrays in, arrays out. Not thread-safe: its worker is its only caller."""
    platform = "paddle_inference"

    def __init__(self, directory: Path, plan: Plan, worker: int):
        from paddle import inference
        model, params = model_files(directory)
        config = inference.Config(str(model), str(params))
        if plan.device == "xpu":
            config.enable_xpu()
            config.set_xpu_device_id(plan.cards[worker])
        else:
            config.disable_gpu()
            if plan.onednn:
                config.enable_mkldnn()
                config.set_mkldnn_cache_capacity(10)
            else:
                config.disable_mkldnn()
            config.set_cpu_math_library_num_threads(plan.threads)
        # No enable_memory_optim(): on a 3.2.2 PIR export, create_predictor then fails ("Not find
        # predictor_id 0 and pass_name memory_optimize_pass"), measured on the CPU wheel.
        config.disable_glog_info()
        with BUILD:
            self.predictor = inference.create_predictor(config)
        shapes = declared(model)
        self.inputs = [self._spec(name, self.predictor.get_input_handle(name), *shapes.get(name, (None, None)))
                       for name in self.predictor.get_input_names()]
        self.outputs: list[TensorSpec] = []      # known after the first run (the warm-up)

    @staticmethod
    def _spec(name: str, handle, shape: list[int] | None, dtype: str | None = None) -> TensorSpec:
        kind = dtype.upper() if dtype and dtype.upper() in PADDLE_TYPES else \
            getattr(handle.type(), "name", str(handle.type()).rsplit(".", 1)[-1])
        if kind not in PADDLE_TYPES:
            raise TrainError(f"input '{name}' has Paddle type {kind}, which the V2 protocol cannot carry")
        if not shape:
            raise TrainError(f"input '{name}': no declared shape in the export (a Paddle 3 inference.json "
                             "written by paddle.jit.save with an InputSpec has one)")
        return TensorSpec(name, PADDLE_TYPES[kind], (-1,) + tuple(int(d) for d in shape[1:]))

    def example(self, rows: int) -> dict[str, np.ndarray]:
        return example_inputs(tuple(self.inputs), rows)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for spec in self.inputs:
            array = np.ascontiguousarray(inputs[spec.name], dtype=DTYPES[spec.datatype])
            self.predictor.get_input_handle(spec.name).copy_from_cpu(array)
        self.predictor.run()
        outputs = {n: self.predictor.get_output_handle(n).copy_to_cpu() for n in self.predictor.get_output_names()}
        if not self.outputs:
            self.outputs = [TensorSpec(n, datatype_of(a.dtype), (-1,) + a.shape[1:] if a.ndim else ())
                            for n, a in outputs.items()]
        return outputs


def threads_env(plan: Plan) -> None:
    """OpenMP reads these once, before Paddle is imported: a worker's share, not the whole machine."""
    if plan.device == "cpu":
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(plan.threads))
