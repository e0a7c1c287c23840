"""One trainer per task (matrix.yaml's `task` of a model). This file is Paddle-free: the CLI reads
the registry below before Paddle is imported. Trainer modules import Paddle and their suite, so they
run in the images (tests/integration).

Every trainer module defines `class Trainer` with:

    Trainer(recipe, data, world)  build the model from the recipe (random init, nothing downloaded);
                                  `data` is the mounted dataset directory or None for synthetic data;
                                  `world` is a parallel.World: shard data with world.shard(), seed
                                  with world.seed(), wrap the model with parallel.wrap(). Dataset
                                  problems raise TrainError naming file:line here, before step 1.
    unit                          throughput unit: "images/s", "tokens/s", "sequences/s", "env steps/s"
    describe_data() -> str        "synthetic", or what was read, e.g. "12 images from a list file"
    samples_per_step() -> float   what this rank processed in the last step, counted in `unit`
    step() -> float               one optimisation step; returns this rank's loss
    save(directory) / load(directory)   model and optimizer state (rank 0 saves, every rank loads)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..errors import TrainError


@dataclass(frozen=True)
class Task:
    module: str                  # trainers/<module>.py
    data_help: str               # what --data expects, for --help and errors
    defaults: dict = field(default_factory=dict)   # recipe keys every model of the task has
    max_threads: int | None = None   # a default cap: small networks run faster on fewer threads
    synthetic: str = "synthetic data"   # what it trains on without --data


TASKS = {
    "classification": Task(
        "classification",
        "a directory with train_list.txt: '<image path> <label>' lines (flowers102 / ImageNet style)",
        {"DataLoader": {"train_list": "train_list.txt"}}),
    "segmentation": Task(
        "segmentation",
        "a directory with train_list.txt: '<image path> <label mask path>' lines, masks single-channel PNGs "
        "of class ids, 255 = ignore (optic_disc_seg / PaddleSeg style)",
        {"DataLoader": {"train_list": "train_list.txt"}}),
    "reinforcement-learning": Task(
        "reinforcement",
        "a dataset: not for DQN, which learns from its own episodes in a simulated environment "
        "(Global.env); --data is an error",
        max_threads=1, synthetic="episodes of its environment"),   # a 128-unit Q network: measured 2-3x faster on one thread than on two
    "language-model": Task(
        "language",
        "a directory with train.tsv (SST-2 style: a header 'sentence<TAB>label', then rows) or train.jsonl "
        "('{\"text\": ..., \"label\": ...}' lines) for text-classification fine-tuning; the vocabulary is built "
        "from it",
        {"DataLoader": {"train_file": "auto"}},
        synthetic="masked-LM + next-sentence pretraining on random token ids"),
    "detection": Task(
        "detection",
        "a VOC directory (roadsign style): train.txt with '<image> <annotation.xml>' lines, "
        "label_list.txt (one class per line), annotations/*.xml, images/",
        {"DataLoader": {"train_list": "train.txt", "label_list": "label_list.txt"}}),
    "instance-segmentation": Task(
        "detection",
        "a COCO directory: annotations/instances_train.json (images, annotations with bbox and polygon "
        "segmentation, categories) and the images under train/",
        {"DataLoader": {"annotations": "annotations/instances_train.json", "image_dir": "train"}}),
}


def task(name: str) -> Task:
    if name not in TASKS:
        raise TrainError(f"no trainer for task '{name}' in this image (known: {', '.join(TASKS)})")
    return TASKS[name]


def for_task(name: str):
    return importlib.import_module(f"{__name__}.{task(name).module}").Trainer
