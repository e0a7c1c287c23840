"""The image side's task packages (entrypoints/kunlun_train/tasks/<task>/), read with `ast` on the host
(the adapters import Paddle, which the host has not): every task name maps to a class its adapter.py
defines, the specs are Paddle-free, and an inference.py imports no training-only package at module
level (the server imports it in an image that may lack them)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from kunlun_train import tasks

TASKS_DIR = Path(tasks.__file__).parent
PACKAGES = sorted(p.name for p in TASKS_DIR.iterdir() if (p / "spec.py").is_file())
# What an inference.py may import at module level: the standard library, numpy and the entrypoint's own
# Paddle-free modules. Paddle and the suites are imported inside its functions, after `serve` set up
# imports.without_init.
ALLOWED = {"__future__", "contextlib", "copy", "io", "json", "math", "sys", "pathlib", "numpy"}


def module_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module.split(".")[0])
    return found


def classes(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)}


def test_every_task_package_has_a_spec_an_adapter_and_an_inference():
    assert PACKAGES == ["classification", "detection", "language", "reinforcement", "segmentation"]
    for package in PACKAGES:
        assert {"__init__.py", "spec.py", "adapter.py", "inference.py"} <= {p.name for p in (TASKS_DIR / package).iterdir()}


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_every_task_name_maps_to_a_class_of_its_packages_adapter(name):
    spec = tasks.spec(name)
    assert spec.adapter in classes(TASKS_DIR / spec.module / "adapter.py")


def test_detection_is_two_classes_over_one_base():
    assert (tasks.spec("detection").adapter, tasks.spec("instance-segmentation").adapter) == ("YOLOv3", "MaskRCNN")
    source = (TASKS_DIR / "detection" / "adapter.py").read_text()
    assert "self.masks" not in source and '"Bundle"' not in source


@pytest.mark.parametrize("package", PACKAGES)
def test_inference_imports_no_training_only_package_at_module_level(package):
    assert module_imports(TASKS_DIR / package / "inference.py") <= ALLOWED


def test_the_registry_and_the_specs_import_without_paddle_or_numpy():
    """The CLI reads them before Paddle is imported (and the host has neither)."""
    script = ("import sys; import kunlun_train.tasks; "
              + "".join(f"import kunlun_train.tasks.{p}.spec; " for p in PACKAGES)
              + "print(sorted(m for m in ('paddle', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=TASKS_DIR.parents[1])
    assert out.stdout.strip() == "[]"
