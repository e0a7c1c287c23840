"""The in-image entrypoint's logic, run on the host without Paddle or Docker: arguments,
recipes and overrides, CPU detection, dataset validation, the log format, checkpoints."""
import io
import json
import os
import subprocess
import sys

import pytest

from kunlun_train import checkpoint, cli, recipe, resources
from kunlun_train.datasets import classification as datasets
from kunlun_train.errors import TrainError
from kunlun_train.steplog import StepLog

from tests.sample_data.classification import flowers as flowers_dataset

RECIPE = {"Global": {"steps": None, "epochs": 120, "image_size": 224, "seed": 42},
          "Arch": {"name": "ResNet50", "class_num": 1000},
          "DataLoader": {"batch_size": 64, "train_list": "train_list.txt"},
          "Optimizer": {"name": "Momentum", "momentum": 0.9,
                        "lr": {"name": "Piecewise", "learning_rate": 0.1, "decay_epochs": [30, 60, 90]}}}
RECIPES = {"Bundle": {"model": "resnet50", "task": "classification", "suite": "paddleclas"},
           "recipes": {"imagenet": RECIPE,
                       "flowers102-finetune": {**RECIPE, "Arch": {"name": "ResNet50", "class_num": 102}}},
           "smoke": {"Global": {"steps": 10}, "DataLoader": {"batch_size": 2}}}


@pytest.fixture
def recipe_file(tmp_path, monkeypatch):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(RECIPES))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    monkeypatch.setenv("KUNLUN_MODEL", "resnet50")
    return path


# --- recipes and -o overrides ------------------------------------------------------------

def test_overrides_parse_values_like_paddleclas():
    out = recipe.override(RECIPE, ["Optimizer.lr.learning_rate=0.5", "Arch.class_num=102", "Arch.name=VGG16"])
    assert out["Optimizer"]["lr"]["learning_rate"] == 0.5
    assert out["Arch"]["class_num"] == 102
    assert out["Arch"]["name"] == "VGG16"
    assert RECIPE["Arch"]["class_num"] == 1000, "the original recipe is left alone"


def test_an_unknown_override_key_is_an_error_naming_the_known_ones():
    with pytest.raises(TrainError) as info:
        recipe.override(RECIPE, ["Global.stpes=3"])
    assert "unknown recipe key 'Global.stpes'" in str(info.value)
    assert "Global.steps" in str(info.value)


def test_an_override_needs_an_equals_sign():
    with pytest.raises(TrainError, match="expected KEY=VALUE"):
        recipe.override(RECIPE, ["Global.steps"])


def test_without_data_the_smoke_overrides_apply(recipe_file):
    """A default `docker run` is a few small steps of the real recipe on synthetic data."""
    args, effective = cli.prepare(["--threads", "1"])
    assert args.command == "train" and args.recipe_name == "imagenet"
    assert effective["Global"]["steps"] == 10 and effective["DataLoader"]["batch_size"] == 2
    assert effective["Optimizer"]["lr"]["decay_epochs"] == [30, 60, 90]      # the recipe underneath is real
    assert args.options.threads == 1 and args.threads_reason == "--threads"
    assert "threads" not in effective["Global"] and "Bundle" not in effective   # runtime facts stay out of the recipe


def test_with_data_the_recipe_runs_as_written(recipe_file, tmp_path):
    _, effective = cli.prepare(["--data", str(flowers_dataset(tmp_path, classes=3)), "--threads", "1"])
    assert effective["Global"]["steps"] is None and effective["DataLoader"]["batch_size"] == 64


# --- the class count comes from the data -------------------------------------------------

def test_without_a_class_count_the_data_decides_it_and_the_run_says_so(recipe_file, tmp_path):
    """A 3-class list with the imagenet recipe (1000 classes) trains a 3-way head."""
    args, effective = cli.prepare(["--data", str(flowers_dataset(tmp_path, classes=3)), "--threads", "1"])
    assert effective["Arch"]["class_num"] == 3
    assert args.notices == ["3 classes, from the data (the largest label in the lists, 2, + 1); "
                            "-o Arch.class_num=N to choose"]


def test_a_label_list_naming_more_classes_than_the_lists_use_counts(recipe_file, tmp_path):
    data = flowers_dataset(tmp_path, classes=3)
    (data / "label_list.txt").write_text("".join(f"{i} class{i}\n" for i in range(5)))
    args, effective = cli.prepare(["--data", str(data), "--threads", "1"])
    assert effective["Arch"]["class_num"] == 5 and "the 5 lines of label_list.txt" in args.notices[0]


def test_an_explicit_class_count_larger_than_the_datas_is_kept_with_a_notice(recipe_file, tmp_path):
    args, effective = cli.prepare(["--data", str(flowers_dataset(tmp_path, classes=3)), "--threads", "1",
                                   "-o", "Arch.class_num=7"])
    assert effective["Arch"]["class_num"] == 7
    assert args.notices == ["Arch.class_num=7: the data has 3 classes (the largest label in the lists, 2, + 1); "
                            "the model's other 4 outputs are trained towards 0"]


def test_an_explicit_class_count_smaller_than_the_datas_is_an_error(recipe_file, tmp_path):
    with pytest.raises(TrainError, match=r"train_list.txt:3: label 2 outside 0..1; set the class count"):
        cli.prepare(["--data", str(flowers_dataset(tmp_path, classes=3)), "--threads", "1", "-o", "Arch.class_num=2"])


def test_without_data_the_recipes_class_count_stays(recipe_file):
    args, effective = cli.prepare(["--threads", "1"])
    assert effective["Arch"]["class_num"] == 1000 and args.notices == []


def test_a_named_recipe_is_selected_and_a_wrong_name_lists_the_others(recipe_file):
    args, effective = cli.prepare(["--recipe", "flowers102-finetune", "--threads", "1"])
    assert args.recipe_name == "flowers102-finetune" and effective["Arch"]["class_num"] == 102
    with pytest.raises(TrainError, match="--recipe nope: this image has the recipes imagenet, flowers102-finetune"):
        cli.prepare(["--recipe", "nope"])


def test_shortcut_flags(recipe_file):
    args, effective = cli.prepare(["--steps", "3", "--batch-size", "4", "--threads", "1"])
    assert effective["Global"]["steps"] == 3
    assert effective["DataLoader"]["batch_size"] == 4
    assert effective["DataLoader"]["train_list"] == "train_list.txt"   # the task's key, from the recipe


def test_eval_of_a_checkpoint_uses_the_recipe_it_was_trained_with(recipe_file, tmp_path):
    trained = {**RECIPE, "Arch": {"name": "ResNet50", "class_num": 4}, "Bundle": {"recipe": "flowers102-finetune"}}
    (tmp_path / "best").mkdir()
    (tmp_path / "best/state.json").write_text(json.dumps({"step": 60, "recipe": trained}))
    (tmp_path / "val_list.txt").write_text("best/state.json 3\n")   # any file: the list is what is checked
    args, effective = cli.prepare(["eval", "--weights", str(tmp_path / "best"), "--data", str(tmp_path), "--threads", "1"])
    assert args.command == "eval" and effective["Arch"]["class_num"] == 4
    assert args.recipe_name == "flowers102-finetune"


def test_the_commands_parse(recipe_file):
    assert cli.prepare(["export", "--weights", "w.pdparams", "--output", "/out", "--threads", "1"])[0].command == "export"
    args, _ = cli.prepare(["predict", "--model", "/out", "--input", "a.jpg", "--input", "dir", "--threads", "1"])
    assert args.command == "predict" and args.input == ["a.jpg", "dir"]


def test_resume_needs_an_output_directory(recipe_file):
    with pytest.raises(TrainError, match="--resume needs --output"):
        cli.prepare(["--resume"])


def test_bad_arguments_exit_2_with_one_line(recipe_file, capsys):
    assert cli.main(["-o", "Nope.x=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: -o Nope.x=1: unknown recipe key 'Nope'") and "Traceback" not in err


def test_print_recipe_shows_upstream_smoke_and_effective(recipe_file, capsys):
    assert cli.main(["--print-recipe", "--steps", "7", "--threads", "2"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["recipe"] == "imagenet" and shown["smoke_applied"] is True
    assert shown["upstream"]["DataLoader"]["batch_size"] == 64 and shown["smoke"]["DataLoader"]["batch_size"] == 2
    assert shown["effective"]["Global"]["steps"] == 7


def test_help_explains_the_commands_and_options(recipe_file, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in ("train", "eval", "export", "predict"):
        assert command in text
    assert "docker run kunlun/resnet50" in text
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--steps", "--epochs", "--batch-size", "--data", "--output", "--resume", "--threads",
                   "--eval-every", "--pretrained", "--export", "--recipe", "--workers", "-o KEY=VALUE"):
        assert option in text, option


# --- CPU threads -------------------------------------------------------------------------

def test_cgroup_v2_quota_limits_threads(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert resources.usable_cpus(tmp_path, affinity=8) == (2, "CPU quota of 1.5 CPUs")


def test_cgroup_v2_without_quota_uses_the_affinity_mask(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert resources.usable_cpus(tmp_path, affinity=3) == (3, "3 CPUs in the affinity mask")


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "cpu,cpuacct/cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu,cpuacct/cpu.cfs_period_us").write_text("100000\n")
    assert resources.usable_cpus(tmp_path, affinity=2) == (1, "CPU quota of 1 CPUs")


def test_cgroup_v1_unlimited(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu/cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu/cpu.cfs_period_us").write_text("100000\n")
    assert resources.usable_cpus(tmp_path, affinity=2)[0] == 2


def test_threads_are_exported_for_openmp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    resources.apply_threads(3)
    import os
    assert os.environ["OMP_NUM_THREADS"] == "3"


# --- datasets ----------------------------------------------------------------------------

def flowers(tmp_path, lines, images=("jpg/image_00001.jpg", "jpg/image_00002.jpg")):
    for name in images:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"not decoded here")
    (tmp_path / "train_list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_flowers_list_parses(tmp_path):
    root = flowers(tmp_path, ["jpg/image_00001.jpg 12", "", "jpg/image_00002.jpg 0"])
    samples = datasets.classification_list(root, "train_list.txt", 102)
    assert [(s.image.name, s.label, s.line) for s in samples] == [("image_00001.jpg", 12, 1), ("image_00002.jpg", 0, 3)]


def test_a_malformed_line_is_named(tmp_path):
    root = flowers(tmp_path, ["jpg/image_00001.jpg 12", "jpg/image_00002.jpg twelve"])
    with pytest.raises(TrainError, match=r"train_list.txt:2: expected '<image path> <integer label>'"):
        datasets.classification_list(root, "train_list.txt", 102)


def test_a_missing_image_is_named(tmp_path):
    root = flowers(tmp_path, ["jpg/image_00001.jpg 1", "jpg/image_09999.jpg 2"])
    with pytest.raises(TrainError, match=r"train_list.txt:2: image jpg/image_09999.jpg not found"):
        datasets.classification_list(root, "train_list.txt", 102)


def test_a_label_beyond_the_class_count_says_how_to_fix_it(tmp_path):
    root = flowers(tmp_path, ["jpg/image_00001.jpg 102"])
    with pytest.raises(TrainError, match=r"label 102 outside 0..101; set the class count with -o Arch.class_num=N"):
        datasets.classification_list(root, "train_list.txt", 102)


def test_a_missing_list_file_shows_the_expected_format(tmp_path):
    with pytest.raises(TrainError, match=r"train_list.txt: missing; .*'jpg/image_03601.jpg 12'"):
        datasets.classification_list(tmp_path, "train_list.txt", 102)


# --- log format ---------------------------------------------------------------------------

def test_step_lines_and_summary():
    out = io.StringIO()
    log = StepLog("resnet50", "images/s", "cpu x2", out)
    log.step(1, 3, 6.9, 4.0, 2)     # the first step is slow and is left out of the rates
    log.step(2, 3, 6.8, 1.0, 2)
    log.step(3, 3, 6.7, 1.0, 2)
    summary = log.summary(batch_size=2)
    lines = out.getvalue().splitlines()
    assert lines[1] == "[resnet50] step 2/3 | loss 6.800000 | 2.00 images/s | 1.000 s/step | cpu x2"
    assert json.loads(lines[-1]) == summary
    assert summary["throughput"] == 2.0 and summary["mean_step_seconds"] == 1.0
    assert (summary["first_step"], summary["last_step"], summary["steps"]) == (1, 3, 3)
    assert summary["loss_finite"] is True and summary["unit"] == "images/s"


def test_a_nan_loss_is_reported():
    log = StepLog("m", "images/s", "cpu", io.StringIO())
    log.step(1, 1, float("nan"), 1.0, 2)
    assert log.summary()["loss_finite"] is False


# --- checkpoints --------------------------------------------------------------------------

def test_latest_checkpoint_ignores_incomplete_ones(tmp_path):
    checkpoint.save(tmp_path, 2, lambda d: (d / "model.pdparams").write_text("w"), {"model": "m"})
    checkpoint.save(tmp_path, 4, lambda d: (d / "model.pdparams").write_text("w"), {"model": "m"})
    (tmp_path / "ckpt-000009").mkdir()               # no state.json: a save that never finished
    (tmp_path / ".ckpt-000010.tmp").mkdir()
    step, directory = checkpoint.latest(tmp_path)
    assert step == 4 and directory.name == "ckpt-000004"
    assert checkpoint.state(directory)["step"] == 4


def test_a_failed_save_leaves_no_checkpoint(tmp_path):
    def fail(directory):
        raise OSError("disk full")
    with pytest.raises(OSError):
        checkpoint.save(tmp_path, 5, fail, {})
    assert checkpoint.latest(tmp_path) is None


def test_paddles_thread_notice_is_dropped_but_other_import_output_kept(monkeypatch, capsys):
    """import_paddle() hides Paddle's OMP_NUM_THREADS notice (we set it on purpose), nothing else.
    The stand-in module below plays Paddle's import-time prints; it is not Paddle."""
    import types
    stand_in = types.ModuleType("paddle")

    class Finder:
        def find_spec(self, name, path=None, target=None):
            import importlib.util
            return importlib.util.spec_from_loader(name, self) if name == "paddle" else None

        def create_module(self, spec):
            return stand_in

        def exec_module(self, module):
            print("WARNING: OMP_NUM_THREADS set to 2, not 1. ...", file=sys.stderr)
            print("PLEASE USE OMP_NUM_THREADS WISELY.", file=sys.stderr)
            print("a real problem", file=sys.stderr)

    monkeypatch.delitem(sys.modules, "paddle", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    assert cli.import_paddle() is stand_in
    assert capsys.readouterr().err == "a real problem\n"


def test_other_ranks_say_which_rank_they_are():
    out = io.StringIO()
    log = StepLog("resnet50", "images/s", "cpu x1, 2 workers", out=out, rank=1)
    log.step(1, 2, 6.9, 2.0, 4)
    summary = log.summary()
    assert out.getvalue().startswith("[resnet50 rank 1] step 1/2 | loss 6.900000")
    assert summary["event"] == "rank summary" and summary["rank"] == 1 and summary["model"] == "resnet50"


# --- a read-only root filesystem (docker run --read-only) -------------------------------------

def test_a_read_only_home_moves_temp_files_and_caches_to_shm(tmp_path, monkeypatch):
    home = "/home/kunlun"
    env = {"HOME": home, "XDG_CACHE_HOME": f"{home}/.cache", "PPNLP_HOME": f"{home}/.paddlenlp"}
    monkeypatch.setattr("tempfile.tempdir", None)
    notice = resources.writable_scratch(env, fallback=str(tmp_path / "shm"), writable=lambda path: False)
    assert "read-only root filesystem" in notice
    assert env["HOME"] == str(tmp_path / "shm/home") and env["XDG_CACHE_HOME"] == str(tmp_path / "shm/home/.cache")
    assert env["PPNLP_HOME"] == str(tmp_path / "shm/home/.paddlenlp") and env["TMPDIR"] == str(tmp_path / "shm/tmp")


def test_a_writable_home_is_left_alone(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert resources.writable_scratch(env, fallback=str(tmp_path / "shm")) is None and env == {"HOME": str(tmp_path)}


# --- the environment stamp (`check`) -----------------------------------------------------------

def test_the_check_names_each_device_node_and_whether_it_opens(tmp_path):
    from kunlun_train import check
    (tmp_path / "xpu0").write_bytes(b"")          # a stand-in node: a file this user can open
    (tmp_path / "xpuctrl").write_bytes(b"")
    (tmp_path / "null").write_bytes(b"")          # not a Kunlun node
    assert check.nodes(tmp_path) == {str(tmp_path / "xpu0"): "rw", str(tmp_path / "xpuctrl"): "rw"}


def test_a_bad_dataset_fails_before_paddle_is_imported(recipe_file, tmp_path, root):
    """The lists are read in prepare(), which imports no Paddle: the error comes in a second."""
    data = flowers_dataset(tmp_path, classes=3)
    (data / "train_list.txt").write_text("jpg/image_00001.png 0\njpg/missing.png 1\n")
    script = ("import sys; from kunlun_train import cli; code = cli.main(['--data', sys.argv[1], '--threads', '1']); "
              "print(code, 'paddle' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script, str(data)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(root / "entrypoints")})
    assert result.stdout.split() == ["2", "False"]                 # exit 2, and Paddle never imported
    assert "train_list.txt:2: image jpg/missing.png not found" in result.stderr
