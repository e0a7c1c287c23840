"""The suites' reviewed patches (patches/<suite>/, listed in matrix.yaml suites.<suite>.patches): every
patch file is listed, and the patches apply to the suite's locked wheel exactly as the suite image
applies them (no fuzz); then what the patched code says, suite by suite. Without the wheel in the cache
and without PyPI they skip, or fail under KUNLUN_TEST_REQUIRE_ALL=1 (`.ci/run`)."""
from __future__ import annotations

import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from kunlun_bundle.errors import InputError
from kunlun_bundle.images import fetch, lock
from kunlun_bundle.matrix import patch_path

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ["x86_64", "aarch64"]


def patched_wheel(matrix, suite: str, arch: str, tmp_path: Path) -> Path:
    """The suite's locked wheel for `arch`, unpacked under tmp_path with every listed patch applied;
    returns the site-packages directory. Fails naming the patch that no longer applies."""
    package = matrix.suites[suite].package or suite
    wheel = next(w for w in lock.LockFile.read(ROOT / f"locks/{arch}/cpu/{suite}.txt").wheels if w.name == package)
    try:
        [path] = fetch.fetch([wheel])
    except InputError as exc:   # only when the wheel is not cached and PyPI is unreachable
        message = f"cannot fetch {wheel.filename}: {exc}"
        if os.environ.get("KUNLUN_TEST_REQUIRE_ALL") == "1":
            pytest.fail(message)
        pytest.skip(message)
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


def paddledet_says(site: Path) -> None:
    generator = site / "ppdet/modeling/proposal_generator"
    for source, count in (("rpn_head.py", 1), ("target.py", 3)):
        text = (generator / source).read_text()
        assert len(re.findall(r"append\(paddle\.shape\(\w+\)\[0:1\]\)", text)) == count
        assert not re.search(r"append\(paddle\.shape\(\w+\)\[0\]\)", text)   # no 0-D count is left
        compile(text, source, "exec")
    ops = (site / "ppdet/modeling/ops.py").read_text()          # 0002: the NMS's PIR branch, before the legacy ones
    nms = ops[ops.index("def multiclass_nms("):ops.index("def matrix_nms(")]
    assert nms.index("if paddle.framework.in_pir_mode():") < nms.index("if in_dynamic_mode():")
    assert "paddle._C_ops.multiclass_nms3(" in nms
    compile(ops, "ops.py", "exec")
    post = (site / "ppdet/modeling/post_process.py").read_text()   # 0003: get_pred's counts and scales stay 1-D
    assert "bbox_num_i = bbox_num[i:i + 1]" in post and "bbox_num_i = bbox_num[i]\n" not in post
    assert "scale_y, scale_x = scale_factor[i][0:1], scale_factor[i][1:2]" in post
    compile(post, "post_process.py", "exec")


def paddleseg_says(site: Path) -> None:
    loss = (site / "paddleseg/models/losses/cross_entropy_loss.py").read_text()
    assert "paddle.ones_like(label, dtype='float32')" in loss and "paddle.ones_like(label)\n" not in loss
    compile(loss, "cross_entropy_loss.py", "exec")
    metrics = (site / "paddleseg/utils/metrics.py").read_text()
    assert metrics.count('"int64")).reshape([1]))') == 3 and 'paddle.concat(pred_area)' in metrics
    compile(metrics, "metrics.py", "exec")


def parl_says(site: Path) -> None:
    """SciPy, which the suite no longer lists, is imported only inside the GAE helpers."""
    source = (site / "parl/utils/rl_utils.py").read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert top_level == ["import numpy as np"] and "    import scipy.signal" in source
    compile(source, "rl_utils.py", "exec")


SAYS = {"paddledet": paddledet_says, "paddleseg": paddleseg_says, "parl": parl_says}


def test_every_patched_suite_is_checked_here(matrix):
    assert sorted(SAYS) == sorted(name for name, suite in matrix.suites.items() if suite.patches)


@pytest.mark.parametrize("suite", sorted(SAYS))
def test_every_patch_file_is_listed_in_the_matrix(matrix, suite):
    listed = matrix.suites[suite].patches
    on_disk = sorted(p.name for p in (ROOT / "patches" / suite).glob("*.patch"))
    assert listed == on_disk and listed, f"patches/{suite}/ and matrix.yaml disagree"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("suite", sorted(SAYS))
def test_the_patches_apply_to_the_locked_wheel(matrix, tmp_path, suite, arch):
    SAYS[suite](patched_wheel(matrix, suite, arch, tmp_path))


@pytest.mark.parametrize("arch", ARCHS)
def test_parl_locks_neither_scipy_nor_pyarrow(arch):
    """What parl's patches make possible: the suite's lock goes without SciPy (and pyarrow)."""
    locked = lock.LockFile.read(ROOT / f"locks/{arch}/cpu/parl.txt").wheels
    assert "scipy" not in {w.name for w in locked} and "pyarrow" not in {w.name for w in locked}
