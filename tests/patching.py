"""The suites' patches applied to their locked wheels exactly as the suite image applies them
(no fuzz), for the per-suite tests that then check what the patched code says."""
from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from kunlun_bundle.images import fetch, lock
from kunlun_bundle.errors import InputError
from kunlun_bundle.matrix import patch_path

ROOT = Path(__file__).resolve().parents[1]


def patched_wheel(matrix, suite: str, arch: str, tmp_path: Path) -> Path:
    """The suite's locked wheel for `arch`, unpacked under tmp_path with every listed patch applied;
    returns the site-packages directory. Fails naming the patch that no longer applies."""
    package = matrix.suites[suite].package or suite
    wheel = next(w for w in lock.LockFile.read(ROOT / f"locks/{arch}/cpu/{suite}.txt").wheels if w.name == package)
    try:
        [path] = fetch.fetch([wheel])
    except InputError as exc:   # only when the wheel is not cached and PyPI is unreachable
        pytest.skip(f"cannot fetch {wheel.filename}: {exc}")
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(site)
    for name in matrix.suites[suite].patches:
        args = ["patch", f"--directory={site}", "--strip=1", "--forward", "--batch", "--fuzz=0",
                "--no-backup-if-mismatch", f"--input={ROOT / patch_path(suite, name)}"]
        dry = subprocess.run([*args, "--dry-run"], capture_output=True, text=True)
        assert dry.returncode == 0, f"{name} no longer applies to {wheel.filename}:\n{dry.stdout}{dry.stderr}"
        subprocess.run(args, check=True, capture_output=True)
    return site
