"""What a task plugs into the training engine (engine.py), and which tasks this image knows.

The engine owns what every task shares: the loop, the learning-rate schedule, the DataLoader and its
sharding across ranks, evaluation cadence, checkpoints and the best one, logs, export. A task is a thin
adapter: its model, datasets and transforms, loss, metric, export input spec and what a prediction
looks like. The contract is the abstract class below; the task modules import Paddle and their suite
and run in the images. This file is Paddle-free: the CLI reads the registry before Paddle is imported.
"""
from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import TrainError


class Metric(abc.ABC):
    """A task's evaluation metric over a split that may be sharded across ranks: each rank updates
    with its batches and hands over `state()` (anything picklable); `merge` of every rank's state is
    the metric over the whole split, the same as one rank evaluating all of it."""

    @abc.abstractmethod
    def update(self, outputs: Any, batch: Any) -> None: ...

    @abc.abstractmethod
    def state(self) -> Any: ...

    @abc.abstractmethod
    def merge(self, states: list) -> dict[str, float]:
        """{name: value}, the primary metric first."""


class Task(abc.ABC):
    """One task's adapter (classification, detection, ...). Built once per process with the
    effective recipe, the mounted dataset directory (None: synthetic data) and the rank's World."""

    unit = "images/s"                  # throughput unit of a step: what `samples()` counts
    eval_unit: str | None = None       # what an evaluation sample is called in the eval line (default: unit's)
    primary = "loss"                   # the metric that picks the best checkpoint (higher is better)
    max_workers: int | None = None     # DataLoader worker processes at most (0: data made in this process)
    serve_without_init: tuple[str, ...] = ()   # suite packages `serve` imports without their inits (imports.py)

    def __init__(self, recipe: dict, data: str | None, world):
        self.recipe, self.data, self.world = recipe, data, world

    # --- data --------------------------------------------------------------------------------
    @abc.abstractmethod
    def datasets(self) -> tuple[Any, Any | None]:
        """(train, eval) paddle.io.Datasets; eval is None when the data has no validation split.
        Dataset problems raise TrainError naming file:line, before the first step."""

    def describe_data(self) -> str:
        return "synthetic" if self.data is None else self.data

    def collate_fn(self):
        return None                    # paddle's default: stack arrays field by field

    def samples(self, batch) -> float:
        """How much one batch is, counted in `unit` (for the throughput)."""
        return float(len(batch[0]))

    def batch_bytes(self) -> int:
        """About how many bytes a training batch takes in flight (for the shared-memory check)."""
        return 0

    # --- model, loss, optimisation -------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self):
        """The paddle.nn.Layer, from random initialisation (nothing downloaded)."""

    @abc.abstractmethod
    def loss(self, model, batch):
        """Forward pass and the loss tensor for one batch."""

    def trainable(self, model) -> list:
        """The parameters the optimizer updates (a recipe may freeze some)."""
        return [p for p in model.parameters() if not p.stop_gradient]

    def train_step(self, model, batch, optimizer):
        """One optimisation step; returns the loss (a tensor or a float). The default is the
        supervised one; a task whose suite owns the update (PARL's agent.learn) overrides it."""
        loss = self.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return loss

    # --- evaluation ----------------------------------------------------------------------------
    @abc.abstractmethod
    def metric(self) -> Metric: ...

    has_clock = False   # evaluates on a clock of its own (eval_due), besides --eval-every

    def eval_due(self, step: int) -> bool:
        """With has_clock, for a task whose evaluation follows a clock of its own (DQN: every N
        finished training episodes, as PARL's examples): asked after every training step (on every
        rank, so it may agree with the others through a collective), True to evaluate now; such a
        run also evaluates at its end."""
        return False

    def evaluate_batch(self, model, batch) -> Any:
        """The model's outputs for one eval batch (the metric's input)."""
        return model(batch[0])

    def predictions(self, outputs, batch) -> list[dict]:
        """Per-sample predictions of an eval batch, for `eval --predictions FILE`."""
        return []

    # --- export and prediction ------------------------------------------------------------------
    input_suffixes: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")   # what `predict DIR` reads

    @abc.abstractmethod
    def input_spec(self) -> list:
        """paddle.static.InputSpec list of the exported inference model."""

    def adapt_weights(self, model, state: dict) -> dict:
        """Weights from a file (--pretrained, eval, export) as this model names them; the suite's
        published files may name a part of it (a backbone) on its own."""
        return state

    def export_layer(self, model):
        """The layer paddle.jit.save writes (the model, or the model plus its deploy-time head)."""
        return model

    def predict(self, predictor, config: dict, files: list, labels: dict | None, args):
        """Yield (input, result dict, one-line summary) per input file, running `predictor`
        (arrays in, arrays out) with the exported inference.yml `config`."""
        raise NotImplementedError

    def inference_config(self) -> dict:
        """What is written beside the exported model (inference.yml): preprocessing and
        post-processing, in the suite's own deploy format where it has one."""
        return {}

    # --- checkpoints ----------------------------------------------------------------------------
    def save_extra(self, directory) -> None:
        """Files a checkpoint needs besides the weights (a vocabulary, ...)."""

    def load_extra(self, directory) -> None: ...

    def save_state(self, directory) -> None:
        """What --resume needs besides the weights and the optimizer (DQN: the replay memory, the
        target network, the agent's counters); written to ckpt-*/ only, not to best/."""

    def load_state(self, directory) -> None:
        """Restore save_state's files on --resume (after the weights and load_extra)."""


@dataclass(frozen=True)
class Spec:
    module: str                  # tasks/<module>.py, the task's adapter
    data_help: str               # what --data expects, for --help and errors
    defaults: dict = field(default_factory=dict)   # recipe keys every model of the task has
    max_threads: int | None = None   # a default cap: small networks run faster on fewer threads
    synthetic: str = "synthetic data"   # what it trains on without --data
    # datasets/<module>.check(recipe, data, command): the mounted dataset parsed before Paddle is imported
    data_check: str | None = None
    examples: str | None = None  # --help examples ({model} filled in) replacing the dataset ones
    vocabulary: bool = False     # tokenizes text: the commands take --vocab FILE (recipe Tokenizer.vocab_file)
    # The recipe key of the class count that the mounted data decides unless -o sets it
    # (datasets/<data_check>.class_count): a recipe's 1000 must not train a 3-class list.
    classes: str | None = None


TASKS = {
    "classification": Spec(
        "classification",
        "a directory with train_list.txt (and val_list.txt for evaluation): '<image path> <label>' lines "
        "(flowers102 / ImageNet style)",
        {"DataLoader": {"train_list": "train_list.txt", "val_list": "val_list.txt"}},
        data_check="classification", classes="Arch.class_num"),
    "segmentation": Spec(
        "segmentation",
        "a directory with train_list.txt (and val_list.txt for evaluation): '<image path> <label mask path>' "
        "lines, masks single-channel PNGs of class ids, 255 = ignore (optic_disc_seg / PaddleSeg style)",
        {"DataLoader": {"train_list": "train_list.txt", "val_list": "val_list.txt"}}),
    "reinforcement-learning": Spec(
        "reinforcement",
        "a dataset: not for DQN, which learns from its own episodes in a simulated environment "
        "(Global.env); --data is an error",
        max_threads=1, synthetic="episodes of its environment",   # a 128-unit Q network: measured 2-3x faster on one thread than on two
        examples=(
            "  docker run --rm kunlun/{model}                       # smoke: 10 learn steps and one evaluation\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} --output /output --epochs 8   # the recipe (8000 learn steps)\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} --output /output --epochs 10 --resume\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} eval --weights /output/best   # greedy episodes\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} export --weights /output/best --to /output/inference\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} predict --model /output/inference --input /output/obs.jsonl\n"
            "      (observation vectors: a JSON array per line in .jsonl, or comma-separated numbers per line in .csv)\n"
            "  invoke run {model} --output O -- --epochs 8     (the mount filled in for you; then -- eval, -- export, ...)\n"
            "`docker run kunlun/{model} COMMAND --help` explains a command.")),
    "language-model": Spec(
        "language",
        "a directory with train.tsv (SST-2 style: a header 'sentence<TAB>label', then rows; ChnSentiCorp's "
        "'label<TAB>text_a' too) or train.jsonl ('{\"text\": ..., \"label\": ...}' lines) for text-classification "
        "fine-tuning, and dev.tsv / dev.jsonl for its accuracy; the vocabulary is --vocab FILE or built from it",
        {"DataLoader": {"train_file": "auto", "dev_file": "auto"}},
        synthetic="masked-LM + next-sentence pretraining on random token ids", vocabulary=True),
    "detection": Spec(
        "detection",
        "a VOC directory (roadsign style): train.txt (and valid.txt for evaluation) with "
        "'<image> <annotation.xml>' lines, label_list.txt (one class per line), annotations/*.xml, images/",
        {"DataLoader": {"train_list": "train.txt", "val_list": "valid.txt", "label_list": "label_list.txt"}}, data_check="voc", examples=(
            "  docker run --rm kunlun/{model}                       # smoke: 10 steps on synthetic images\n"
            "  docker run --rm -v $PWD/roadsign_voc:/data:ro -v $PWD/out:/output kunlun/{model} \\\n"
            "      --data /data --output /output --epochs 40 --pretrained /data/yolov3_coco.pdparams\n"
            "  docker run --rm -v ... kunlun/{model} eval --data /data --weights /output/best   # VOC mAP@0.5 on valid.txt\n"
            "  docker run --rm -v ... kunlun/{model} export --weights /output/best --to /output/inference\n"
            "  docker run --rm -v ... kunlun/{model} predict --model /output/inference --input /data/images --threshold 0.3\n"
            "  invoke run {model} --data D --output O -- --epochs 40   (mounts filled in for you)\n"
            "`docker run kunlun/{model} COMMAND --help` explains a command.")),
    "instance-segmentation": Spec(
        "detection",
        "a COCO directory: annotations/instances_train.json (images, annotations with bbox and polygon "
        "segmentation, categories) with the images under train/, and for evaluation "
        "annotations/instances_val.json with its images under val/",
        {"DataLoader": {"annotations": "annotations/instances_train.json", "image_dir": "train",
                        "val_annotations": "annotations/instances_val.json", "val_image_dir": "val"}}, data_check="coco", examples=(
            "  docker run --rm kunlun/{model}                       # smoke: 10 steps on synthetic images\n"
            "  docker run --rm -v $PWD/coco:/data:ro -v $PWD/out:/output kunlun/{model} \\\n"
            "      --data /data --output /output --epochs 12 -o DataLoader.image_dir=train2017 \\\n"
            "      -o DataLoader.val_image_dir=val2017 -o DataLoader.val_annotations=annotations/instances_val2017.json\n"
            "  docker run --rm -v ... kunlun/{model} eval --data /data --weights /output/best   # COCO bbox and segm AP\n"
            "  docker run --rm -v ... kunlun/{model} export --weights /output/best --to /output/inference\n"
            "  docker run --rm -v ... kunlun/{model} predict --model /output/inference --input /data/val --masks /output/masks\n"
            "  invoke run {model} --data D --output O -- --epochs 12   (mounts filled in for you)\n"
            "`docker run kunlun/{model} COMMAND --help` explains a command.")),
}


def spec(name: str) -> Spec:
    if name not in TASKS:
        raise TrainError(f"no trainer for task '{name}' in this image (known: {', '.join(TASKS)})")
    return TASKS[name]


def check_data(name: str, recipe: dict, data: str, command: str) -> None:
    """Parse the mounted dataset with the task's Paddle-free reader (TrainError naming file:line)."""
    module = spec(name).data_check
    if module:
        importlib.import_module(f"{__name__.rsplit('.', 1)[0]}.datasets.{module}").check(recipe, data, command)


def class_count(name: str, recipe: dict, data: str, explicit: bool) -> str | None:
    """Set the task's class count (Spec.classes) from the mounted data unless -o gave it (explicit);
    returns what to tell the user. An explicit count below the data's fails later, in the data check,
    naming the line; one above it is kept, with a notice."""
    key = spec(name).classes
    if not key:
        return None
    count, source = importlib.import_module(f"{__name__.rsplit('.', 1)[0]}.datasets.{spec(name).data_check}") \
        .class_count(recipe, data)
    section, field_name = key.split(".")
    current = int(recipe[section][field_name])
    if not explicit and count:
        recipe[section][field_name] = count
        return f"{count} classes, from the data ({source}); -o {key}=N to choose"
    if explicit and count and current > count:
        return (f"{key}={current}: the data has {count} classes ({source}); the model's other "
                f"{current - count} outputs are trained towards 0")
    return None


def adapter(name: str) -> type:
    """The task's class, a Task subclass run by engine.Engine."""
    return importlib.import_module(f"{__name__}.{spec(name).module}").Task
