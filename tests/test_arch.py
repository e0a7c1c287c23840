"""Arch names: canonical names, the aliases users type, and the keywords native and all."""
import platform

import pytest

from kunlun_bundle.errors import UsageError


@pytest.mark.parametrize("typed, canonical", [
    ("x86", "x86_64"), ("amd64", "x86_64"), ("intel", "x86_64"), ("X86_64", "x86_64"),
    ("arm", "aarch64"), ("arm64", "aarch64"), ("phytium", "aarch64"), ("aarch64", "aarch64"),
])
def test_aliases_resolve_to_the_canonical_name(matrix, typed, canonical):
    assert [a.name for a in matrix.arch_registry.resolve(typed)] == [canonical]


def test_default_and_native_are_this_host(matrix):
    host = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine().lower()]
    assert [a.name for a in matrix.arch_registry.resolve(None)] == [host]
    assert [a.name for a in matrix.arch_registry.resolve("native")] == [host]


def test_all_and_lists_keep_matrix_order_without_repeats(matrix):
    assert [a.name for a in matrix.arch_registry.resolve("all")] == ["x86_64", "aarch64"]
    assert [a.name for a in matrix.arch_registry.resolve("arm,x86,amd64")] == ["x86_64", "aarch64"]


def test_unknown_arch_lists_the_valid_ones(matrix):
    with pytest.raises(UsageError) as info:
        matrix.arch_registry.resolve("sparc")
    assert "unknown arch 'sparc'" in info.value.message
    assert "x86_64 (x86, amd64, intel), aarch64 (arm, arm64, phytium), or native / all" in info.value.hint


def test_docker_platforms(matrix):
    assert matrix.arch_registry["arm"].platform == "linux/arm64"
    assert matrix.arch_registry["x86"].platform == "linux/amd64"
