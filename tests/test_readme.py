"""The Chinese README (README_cn.md) stays in step with the English one: both name the same bundle
tasks and the same model images, and the model images are every model of the matrix."""
from __future__ import annotations

import re
from pathlib import Path

import invoke

import tasks

ROOT = Path(__file__).resolve().parent.parent
TASKS = set(invoke.Collection.from_module(tasks).task_names)


def tasks_named(text: str) -> set[str]:
    """Tasks as a reader meets them: `./kunlun TASK`, `invoke TASK`, or a row of the tasks table."""
    found = re.findall(r"(?:\./kunlun|\binvoke) ([a-z][a-z0-9-]*)|^\| `(?:\./kunlun )?([a-z][a-z0-9-]*)", text, re.M)
    return {name for pair in found for name in pair if name in TASKS}


def models_named(text: str, models: set[str]) -> set[str]:
    return {name for name in re.findall(r"kunlun/([a-z][a-z0-9-]*)", text) if name in models}


def test_both_readmes_name_the_same_tasks_and_every_task():
    english, chinese = (ROOT / "README.md").read_text(), (ROOT / "README_cn.md").read_text()
    assert tasks_named(chinese) == tasks_named(english)
    assert tasks_named(english) == TASKS


def test_both_readmes_name_every_model_image(matrix):
    models = set(matrix.models)
    english, chinese = (ROOT / "README.md").read_text(), (ROOT / "README_cn.md").read_text()
    assert models_named(english, models) == models
    assert models_named(chinese, models) == models


def test_each_readme_links_the_other_and_the_task_pages():
    english, chinese = (ROOT / "README.md").read_text(), (ROOT / "README_cn.md").read_text()
    assert "(README_cn.md)" in english and "(README.md)" in chinese
    for page in re.findall(r"\((docs/[a-z]+\.md)\)", english + chinese):
        assert (ROOT / page).is_file(), f"{page} is linked but missing"
