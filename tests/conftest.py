"""Shared fixtures. Unit tests need neither Docker nor the network; tests/integration does."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from invoke import Collection, Program

import tasks
from kunlun_bundle import matrix as matrix_mod   # importable through pytest.ini's pythonpath

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def matrix_namespace(request, monkeypatch):
    """Unit tests see the matrix as committed; only the image tests follow $KUNLUN_NAMESPACE."""
    if request.node.get_closest_marker("docker") is None:
        monkeypatch.delenv("KUNLUN_NAMESPACE", raising=False)


class Finished(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def invoke(capsys, monkeypatch):
    """invoke(*args, env=None): the bundle's tasks as `./kunlun ARGS` runs them, but in this process
    (seconds less per call than a subprocess); returns the exit code, stdout and stderr. An exception a
    task lets escape (a traceback) fails the test. `env` sets variables for the call, KUNLUN_MATRIX too."""
    def run(*args: str, env: dict[str, str] | None = None) -> Finished:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        if env and "KUNLUN_MATRIX" in env:   # tasks.py reads it once, on import
            monkeypatch.setattr(tasks, "MATRIX", Path(env["KUNLUN_MATRIX"]))
        monkeypatch.setattr(sys, "argv", ["invoke", *args])   # tasks read arguments after `--` from it
        monkeypatch.chdir(ROOT)
        capsys.readouterr()
        try:
            Program(namespace=Collection.from_module(tasks)).run(["invoke", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Finished(code, out, err)
    return run


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def matrix():
    return matrix_mod.load(ROOT / "matrix.yaml")


@pytest.fixture
def small_matrix():
    """A fixed matrix for golden tests: it changes only when the tests say so."""
    return matrix_mod.load(ROOT / "tests/data/matrix-small.yaml")


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """templates/, dockerfiles/, locks/ and matrix.yaml copied where a test may change them."""
    for name in ("templates", "dockerfiles", "locks", "patches"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "matrix.yaml", tmp_path / "matrix.yaml")
    return tmp_path


@pytest.fixture
def write_matrix(tmp_path):
    """Write the real matrix with a change applied; returns its path."""
    def write(change=None, text: str | None = None) -> Path:
        path = tmp_path / "matrix.yaml"
        if not (tmp_path / "patches").exists():   # the matrix names patch files relative to itself
            (tmp_path / "patches").symlink_to(ROOT / "patches")
        if text is None:
            data = yaml.safe_load((ROOT / "matrix.yaml").read_text())
            if change:
                change(data)
            text = yaml.safe_dump(data, sort_keys=False)
        path.write_text(text)
        return path
    return write
