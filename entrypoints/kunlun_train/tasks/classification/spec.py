"""Image classification (PaddleClas): what the CLI knows before Paddle is imported. The list
reader is datasets/classification.py (it also counts the classes the data has)."""
from __future__ import annotations

from ..contract import Spec

SPECS = {
    "classification": Spec(
        "classification", "Task",
        "a directory with train_list.txt (and val_list.txt for evaluation): '<image path> <label>' lines "
        "(flowers102 / ImageNet style)",
        {"DataLoader": {"train_list": "train_list.txt", "val_list": "val_list.txt"}},
        data_check="classification", classes="Arch.class_num"),
}
