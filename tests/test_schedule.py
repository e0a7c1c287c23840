"""Learning-rate schedules fitted to the run actually made (kunlun_train/schedule.py), and the
DataLoader's shared-memory check (kunlun_train/shm.py). Paddle-free: run on the host."""
import math

import pytest

from kunlun_train import schedule, shm
from kunlun_train.errors import TrainError

RESNET50 = {"name": "Piecewise", "learning_rate": 0.1, "decay_epochs": [30, 60, 90],
            "values": [0.1, 0.01, 0.001, 0.0001]}


def length(epochs=120, samples=1000, batch=10, steps=None, run_epochs=None):
    return schedule.length({"Global": {"epochs": epochs}}, samples, batch, steps, run_epochs)


def test_the_whole_recipe_decays_at_its_epochs():
    size = length()                                   # 100 steps an epoch, 120 epochs
    assert (size.steps_per_epoch, size.nominal_steps, size.run_steps) == (100, 12000, 12000)
    plan = schedule.plan(RESNET50, size)
    assert plan.boundaries == [3000, 6000, 9000]
    assert [plan.lr_at(s) for s in (0, 2999, 3000, 6000, 9000, 11999)] == [0.1, 0.1, 0.01, 0.001, 0.0001, 0.0001]


def test_a_shorter_run_decays_at_the_same_fractions_of_itself():
    for size in (length(run_epochs=12), length(steps=1200)):  # --epochs 12 or --steps 1200 of a 120-epoch recipe
        plan = schedule.plan(RESNET50, size)
        assert plan.total_steps == 1200 and plan.boundaries == [300, 600, 900]


def test_steps_per_epoch_are_whole_batches_of_the_real_data():
    """The incomplete last batch is dropped (898 digits in batches of 64: 14 steps, not a 15th on 2)."""
    assert length(samples=1001, batch=10).steps_per_epoch == 100
    assert length(samples=898, batch=64).steps_per_epoch == 14
    assert schedule.drops_last(898, 64) and not schedule.drops_last(5, 64)
    assert length(samples=5, batch=64).steps_per_epoch == 1            # smaller than a batch: one step of all of it


def test_each_rank_counts_whole_batches_of_its_own_shard():
    """DistributedBatchSampler pads the set to a multiple of the ranks: 898 on 4 ranks is 225 each,
    3 whole batches of 64 per rank (and per step of the job); 100 on 3 ranks, 34 each, 1 batch of 32."""
    assert schedule.epoch_steps(898, 64, ranks=4) == 3
    assert schedule.epoch_steps(100, 32, ranks=3) == 1
    assert schedule.length({"Global": {"epochs": 2}}, 898, 64, ranks=4).nominal_steps == 6
    assert not schedule.drops_last(100, 64, ranks=2)                    # 50 a shard: one step of 50


def test_the_smoke_run_is_the_recipe_steps():
    size = schedule.length({"Global": {"epochs": 120, "steps": 10}}, 64, 2)
    assert size.run_steps == 10
    assert schedule.plan(RESNET50, size).boundaries == [2, 5, 8]


def test_cosine_with_warmup_epochs_as_paddleclas_mobilenetv3():
    """Warm-up over 5 of 360 epochs from 0, then a cosine over the remaining steps down to 0."""
    lr = {"name": "Cosine", "learning_rate": 0.65, "warmup_epoch": 5, "warmup_start_lr": 0.0}
    plan = schedule.plan(lr, length(epochs=360, samples=100, batch=10))   # 10 steps an epoch: 3600 steps
    assert plan.warmup_steps == 50
    assert plan.lr_at(0) == 0.0 and plan.lr_at(25) == pytest.approx(0.325) and plan.lr_at(50) == pytest.approx(0.65)
    assert plan.lr_at(50 + 1775) == pytest.approx(0.325)   # half-way through the cosine
    assert plan.lr_at(3599) == pytest.approx(0.0, abs=1e-6)


def test_warmup_keeps_its_length_in_a_shorter_run_as_the_suites_do():
    """PaddleClas MobileNetV3 with -o Global.epochs=30: still 5 warm-up epochs; only the decay is
    fitted to the run. (The old rule scaled it to 5/12 of an epoch: 2 steps.)"""
    lr = {"name": "Cosine", "learning_rate": 0.65, "warmup_epoch": 5, "warmup_start_lr": 0.0}
    plan = schedule.plan(lr, length(epochs=360, samples=100, batch=10, run_epochs=30))   # 300 steps
    assert plan.total_steps == 300 and plan.warmup_steps == 50
    assert plan.lr_at(50) == pytest.approx(0.65) and plan.lr_at(50 + 125) == pytest.approx(0.325)
    assert "linear warm-up from 0 over 50 steps" in plan.describe() and "cut" not in plan.describe()


def test_a_warmup_longer_than_half_a_short_run_is_cut_to_half_of_it():
    """15 epochs of 14 steps with MobileNetV3's 5-epoch warm-up: 70 of 210 steps, kept; 4 epochs: 56
    steps, of which the warm-up may take 28 and the run says so."""
    lr = {"name": "Cosine", "learning_rate": 0.65, "warmup_epoch": 5}
    assert schedule.plan(lr, length(epochs=360, samples=898, batch=64, run_epochs=15)).warmup_steps == 70
    short = schedule.plan(lr, length(epochs=360, samples=898, batch=64, run_epochs=4))
    assert short.warmup_steps == 28
    assert "over 28 steps (the recipe's 70, cut to half of this run)" in short.describe()


def test_warmup_given_in_iterations_keeps_them_as_paddledetection_yolov3():
    """4000 warm-up iterations of a 270-epoch recipe: 4000 in the whole recipe and in a run of a fifth
    of its length (13932 steps), whose decays fall at a fifth of the recipe's."""
    lr = {"name": "Piecewise", "learning_rate": 0.001, "decay_epochs": [216, 243], "warmup_steps": 4000,
          "warmup_start_factor": 0.0}
    full = length(epochs=270, samples=16551, batch=64)                   # VOC07+12 at 64 a step: 258 steps an epoch
    plan = schedule.plan(lr, full)
    assert plan.warmup_steps == 4000 and plan.boundaries == [216 * 258, 243 * 258]
    fifth = schedule.plan(lr, length(epochs=270, samples=16551, batch=64, run_epochs=54))
    assert fifth.warmup_steps == 4000 and fifth.boundaries == [round(216 * 258 / 5), round(243 * 258 / 5)]
    assert plan.values == pytest.approx([0.001, 0.0001, 0.00001])         # gamma 0.1 by default


def test_polynomial_decay_over_iterations_as_paddleseg():
    lr = {"name": "Polynomial", "learning_rate": 0.01, "power": 0.9, "end_lr": 0.0}
    plan = schedule.plan(lr, schedule.length({"Global": {"iters": 1000}}, 100, 4, run_steps=100))
    assert plan.lr_at(0) == 0.01 and plan.lr_at(50) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert plan.lr_at(100) == pytest.approx(0.0)


def test_linear_decay_with_a_warmup_proportion_as_paddlenlp_bert_on_glue():
    """run_glue.py: LinearDecayWithWarmup(2e-5, total, warmup=0.1): up from 0 over the first tenth of
    the run (floor(0.1 x total) steps), then linearly down to 0 at the end, whatever the run's length."""
    lr = {"name": "Linear", "learning_rate": 2e-5, "warmup_proportion": 0.1}
    sst2 = schedule.length({"Global": {"epochs": 3}}, 67349, 32)          # SST-2: 2104 whole batches an epoch
    plan = schedule.plan(lr, sst2)
    assert plan.total_steps == 6312 and plan.warmup_steps == 631
    assert plan.lr_at(0) == 0.0 and plan.lr_at(631) == pytest.approx(2e-5)
    assert plan.lr_at(631 + (6312 - 631) // 2) == pytest.approx(1e-5, rel=1e-3)
    assert plan.lr_at(6311) == pytest.approx(2e-5 / (6312 - 631), rel=1e-6)
    short = schedule.plan(lr, schedule.length({"Global": {"epochs": 3}}, 67349, 32, run_steps=95))
    assert short.warmup_steps == 9                                       # floor(9.5): the same fraction of a short run
    assert schedule.plan({**lr, "warmup_proportion": 0.0}, sst2).warmup_steps == 0   # ERNIE's train.py


def test_a_warmup_proportion_is_a_fraction_given_one_way():
    with pytest.raises(TrainError, match=r"warmup_proportion=1.5: expected a fraction of the run"):
        schedule.plan({"name": "Linear", "learning_rate": 1e-4, "warmup_proportion": 1.5}, length())
    with pytest.raises(TrainError, match="give the warm-up one way"):
        schedule.plan({"name": "Linear", "learning_rate": 1e-4, "warmup_proportion": 0.1, "warmup_steps": 10}, length())


def test_a_run_shorter_than_the_warmup_still_reaches_the_base_rate():
    plan = schedule.plan({"name": "Cosine", "learning_rate": 0.1, "warmup_steps": 1000}, length(steps=10))
    assert plan.warmup_steps == 5 and plan.lr_at(plan.warmup_steps) == pytest.approx(0.1)


def test_a_warmup_longer_than_the_recipe_is_half_of_the_run():
    """YOLOv3's 4000 warm-up iterations on a set whose 270 epochs are 2160 steps, in a run of 216."""
    lr = {"name": "Piecewise", "learning_rate": 0.001, "decay_epochs": [216, 243], "warmup_steps": 4000}
    size = schedule.Length(steps_per_epoch=8, nominal_steps=2160, run_steps=216)
    plan = schedule.plan(lr, size)
    assert plan.warmup_steps == 108 and plan.boundaries == [173, 194]


def test_the_linear_scaling_rule_follows_the_global_batch():
    """A recipe tuned for 4 cards x 64 run at batch 16: every rate x 16/256."""
    plan = schedule.plan({**RESNET50, "reference_batch": 256}, length(), global_batch=16)
    assert plan.values == pytest.approx([0.00625, 0.000625, 0.0000625, 0.00000625])
    assert "x0.0625" in plan.describe()
    assert schedule.plan(RESNET50, length(), global_batch=16).lr_scale == 1.0   # no reference: as written


def test_mistakes_in_the_schedule_are_named():
    with pytest.raises(TrainError, match="Optimizer.lr.name='Step'"):
        schedule.plan({"name": "Step", "learning_rate": 0.1}, length())
    with pytest.raises(TrainError, match="decay_epochs=.*beyond the recipe's length"):
        schedule.plan({**RESNET50, "decay_epochs": [30, 60, 200]}, length())
    with pytest.raises(TrainError, match="4 values for 2 boundaries"):
        schedule.plan({**RESNET50, "decay_epochs": [30, 60]}, length())


# --- shared memory for the DataLoader's workers ---------------------------------------------

def test_batches_in_flight_that_fit_use_shared_memory():
    decision = shm.decide(workers=2, batch_bytes=10 * 2 ** 20, free=1 << 30)
    assert decision.use_shared_memory and not decision.notice


def test_dockers_default_64mb_falls_back_to_pipes_and_says_which_size_to_give():
    """ResNet50 at batch 64: 38 MB a batch, 4 workers x 2 prefetched: far beyond 64 MB."""
    decision = shm.decide(workers=4, batch_bytes=64 * 3 * 224 * 224 * 4, free=64 * 2 ** 20)
    assert not decision.use_shared_memory
    assert "batches go through pipes instead" in decision.notice and "--shm-size 512m" in decision.notice   # 441 MB needed


def test_no_workers_need_no_shared_memory():
    assert shm.decide(0, 10 ** 9, 0) == shm.Decision(False, 0, 0)


def test_suggested_sizes_round_up():
    assert shm.suggested_size(10) == "256m" and shm.suggested_size(300 * 2 ** 20) == "512m"
    assert shm.suggested_size(int(1.5 * 2 ** 30)) == "2g"


def test_free_shared_memory_is_read_from_the_filesystem(tmp_path):
    assert shm.free_bytes(str(tmp_path)) > 0 and shm.free_bytes(str(tmp_path / "missing")) is None
    assert math.isfinite(shm.free_bytes(str(tmp_path)))
