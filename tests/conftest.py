"""Shared fixtures. Unit tests need neither Docker nor the network; tests/integration does."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kunlun_bundle import matrix as matrix_mod   # importable through pytest.ini's pythonpath

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def matrix_namespace(request, monkeypatch):
    """Unit tests see the matrix as committed; only the image tests follow $KUNLUN_NAMESPACE."""
    if request.node.get_closest_marker("docker") is None:
        monkeypatch.delenv("KUNLUN_NAMESPACE", raising=False)


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
