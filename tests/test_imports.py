"""`serve` imports a suite's deploy modules without the suite's package init (imports.py): the init
imports what only training needs, which a serving image does not have."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT


def test_a_submodule_imports_without_its_packages_init_and_a_full_import_is_untouched(tmp_path):
    suite = tmp_path / "suite"
    (suite / "deploy").mkdir(parents=True)
    (suite / "__init__.py").write_text("import a_training_only_package\n")   # as paddleclas/__init__.py
    (suite / "deploy" / "__init__.py").write_text("")
    (suite / "deploy" / "preprocess.py").write_text("from suite.deploy import helpers\nRESIZE = helpers.SIZE\n")
    (suite / "deploy" / "helpers.py").write_text("SIZE = 224\n")
    script = textwrap.dedent("""
        import sys
        from kunlun_train import imports
        try:
            import suite
        except ImportError as exc:
            print("whole:", exc.name)
        imports.without_init("suite")
        from suite.deploy import preprocess
        print("lean:", preprocess.RESIZE, "suite.__init__ run:", hasattr(sys.modules["suite"], "a_training_only_package"))
        try:
            imports.without_init("nonesuch")
        except Exception as exc:
            print("missing:", exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": f"{ROOT / 'entrypoints'}:{tmp_path}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "whole: a_training_only_package",
        "lean: 224 suite.__init__ run: False",
        "missing: nonesuch: not an installed package (is this image's suite the export's?)"]


def test_a_module_imported_but_never_called_at_serve_time_is_a_stand_in_only_where_it_is_missing(tmp_path):
    script = textwrap.dedent("""
        from kunlun_train import imports
        imports.unused("nonesuch", "nonesuch.ndimage")
        from nonesuch.ndimage import distance_transform_edt     # as paddleseg's transforms import scipy's
        from nonesuch import ndimage
        try:
            distance_transform_edt([0])
        except Exception as exc:
            print(type(exc).__name__, exc)
        import json
        imports.unused("json")                                  # installed: left as it is
        print(json.dumps([1]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(ROOT / "entrypoints")})
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("TrainError nonesuch.ndimage.distance_transform_edt: nonesuch is not in this serving image")
    assert "serve this export from the training image" in first and second == "[1]"

