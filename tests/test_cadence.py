"""When the engine evaluates, saves and stops (kunlun_train/cadence.py), and the run's options the
CLI hands it (kunlun_train/options.py). Paddle-free: run on the host."""
import json

import pytest

from kunlun_train import cli
from kunlun_train.cadence import Cadence, Due, eval_interval
from kunlun_train.errors import TrainError
from kunlun_train.options import RunOptions


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_evaluation_and_saving_follow_their_step_counts():
    due = Cadence(total=10, eval_every=4, save_every=3, saving=True)
    plan = {step: due.after(step, stopped=False) for step in range(1, 10)}
    assert [s for s, d in plan.items() if d.evaluate] == [4, 8]
    assert [s for s, d in plan.items() if d.save] == [3, 6, 9]


def test_the_last_step_and_a_stop_only_stop():
    due = Cadence(total=8, eval_every=4, save_every=4, saving=True)
    assert due.after(8, stopped=False) == Due(stop=True)          # the end of the run evaluates and saves itself
    assert due.after(4, stopped=True) == Due(stop=True)


def test_without_an_output_nothing_is_saved():
    assert not Cadence(total=10, save_every=1, saving=False).after(1, False).save


def test_saving_by_time_counts_from_the_last_save():
    clock = Clock()
    due = Cadence(total=100, save_minutes=10, saving=True, clock_seconds=clock)
    clock.now = 599
    assert not due.after(1, False).save
    clock.now = 600
    assert due.after(2, False).save
    due.saved()
    clock.now = 1000
    assert not due.after(3, False).save


def test_a_tasks_own_clock_evaluates_and_the_end_evaluates_once_more():
    """DQN evaluates every N finished episodes: its clock says when; the run's end evaluates too."""
    episodes = {3: True}
    due = Cadence(total=5, clock=lambda step: episodes.get(step, False))
    assert [s for s in range(1, 5) if due.after(s, False).evaluate] == [3]
    assert due.at_end(5, first=0, stopped=False)


def test_the_end_evaluates_only_a_finished_run_that_trained_and_evaluates_at_all():
    assert Cadence(total=5, eval_every=2).at_end(5, first=0, stopped=False)
    assert not Cadence(total=5, eval_every=2).at_end(5, first=5, stopped=False)    # resumed when already done
    assert not Cadence(total=5, eval_every=2).at_end(3, first=0, stopped=True)     # stopped
    assert not Cadence(total=5).at_end(5, first=0, stopped=False)                  # never evaluates


@pytest.mark.parametrize("given, recipe, expected", [
    ("200", {}, 200), ("2e", {}, 28), ("0.5e", {}, 7), (None, {"eval_every": 1000}, 1000),
    (None, {"eval_interval": 2}, 28), (None, {}, 14), (None, {"eval_interval": None}, 0)])
def test_the_evaluation_interval_in_steps(given, recipe, expected):
    assert eval_interval(given, recipe, per_epoch=14, has_split=True, synthetic=False) == expected


def test_no_split_or_an_unasked_smoke_run_never_evaluates():
    assert eval_interval("10", {}, 14, has_split=False, synthetic=False) == 0
    assert eval_interval(None, {"eval_interval": 1}, 14, has_split=True, synthetic=True) == 0
    assert eval_interval("3", {}, 14, has_split=True, synthetic=True) == 3     # asked for: it does


def test_a_bad_interval_is_named():
    with pytest.raises(TrainError, match=r"--eval-every 'often': expected steps \(200\) or epochs \(2e\)"):
        eval_interval("often", {}, 14, True, False)


# --- the run's options ------------------------------------------------------------------------

@pytest.fixture
def image_recipe(tmp_path, monkeypatch):
    recipe = {"Bundle": {"model": "resnet50", "task": "classification"},
              "recipes": {"imagenet": {"Global": {"epochs": 120, "image_size": 224, "seed": 0},
                                       "Arch": {"name": "ResNet50", "class_num": 1000},
                                       "DataLoader": {"batch_size": 64, "train_list": "train_list.txt"},
                                       "Optimizer": {"name": "Momentum", "lr": {"name": "Constant", "learning_rate": 0.1}}}},
              "smoke": {"Global": {"steps": 10}}}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    monkeypatch.setenv("KUNLUN_MODEL", "not-this-name")
    return path


def test_the_engine_gets_one_frozen_options_object(image_recipe, tmp_path):
    args, _ = cli.prepare(["--epochs", "3", "--output", str(tmp_path / "out"), "--save-every", "50", "--keep", "2",
                           "--eval-every", "2e", "--workers", "1", "--threads", "2"])
    options = args.options
    assert options == RunOptions(command="train", model="resnet50", task="classification", recipe="imagenet",
                                 output=str(tmp_path / "out"), epochs=3.0, eval_every="2e", save_every=50,
                                 save_minutes=10.0, keep=2, workers=1, threads=2, device="cpu", smoke=True)
    with pytest.raises(AttributeError):
        options.epochs = 4                                            # frozen


def test_the_model_name_comes_from_the_images_recipe_first(image_recipe):
    assert cli.prepare(["--threads", "1"])[0].options.model == "resnet50"


def test_steps_and_epochs_together_are_refused(image_recipe):
    with pytest.raises(TrainError, match="--steps and --epochs both say how long the run is: give one"):
        cli.prepare(["--steps", "3", "--epochs", "1", "--threads", "1"])
