"""`--devices`: how the entrypoint turns one container into N data-parallel workers through
Paddle's launcher, and what each worker learns from the launcher's environment (no Paddle here)."""
import pytest

from kunlun_train import cli, parallel
from kunlun_train.errors import TrainError


def test_a_count_or_a_list_of_ids():
    assert parallel.parse_devices(None) == ["0"]
    assert parallel.parse_devices("2") == ["0", "1"]
    assert parallel.parse_devices("0,2") == ["0", "2"]


@pytest.mark.parametrize("bad", ["0", "0,0", "a,b", "1,,2"])
def test_bad_device_lists_are_errors(bad):
    with pytest.raises(TrainError, match="--devices"):
        parallel.parse_devices(bad)


def test_workers_get_the_same_arguments_and_a_share_of_the_threads():
    argv = ["--steps", "3", "--devices", "2", "-o", "Arch.class_num=3", "--threads=4", "--resume"]
    assert parallel.worker_args(argv, 2) == ["--steps", "3", "-o", "Arch.class_num=3", "--resume", "--threads", "2"]


def test_the_launcher_runs_the_worker_script_beside_the_package():
    cmd = parallel.launch_command(["0", "1"], ["--steps", "2"], "/tmp/logs")
    assert cmd[1:6] == ["-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir"]
    assert cmd[-3:] == [str(parallel.WORKER), "--steps", "2"]
    # Outside the package, so the package's module names (datasets, parallel) shadow nothing.
    assert parallel.WORKER.parent.name == "entrypoints" and parallel.WORKER.is_file()


def test_each_worker_knows_its_rank_from_the_launcher():
    world = parallel.World.from_env({"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "2"})
    assert (world.rank, world.size, world.distributed, world.leader) == (1, 2, True, False)
    assert parallel.World.from_env({}) == parallel.World(0, 1)


def test_ranks_get_disjoint_shards_and_different_seeds():
    items = list(range(5))
    shards = [parallel.World(r, 2).shard(items) for r in (0, 1)]
    assert shards == [[0, 2, 4], [1, 3]]
    assert parallel.World(0, 8).shard([7]) == [7] and parallel.World(3, 8).shard([7]) == [7]   # never empty
    assert parallel.World(0, 2).seed(42) != parallel.World(1, 2).seed(42)


def test_one_worker_trains_without_the_launcher(monkeypatch, tmp_path):
    """--devices 1 (or none) trains in this process; the launcher is only for two or more."""
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"Bundle": {"task": "classification"}, "Global": {"steps": 1}, "DataLoader": {"batch_size": 1}}')
    monkeypatch.setenv("KUNLUN_RECIPE", str(recipe))
    launched, trained = [], []
    monkeypatch.setattr(cli, "launch", lambda *a: launched.append(a) or 0)
    monkeypatch.setattr(cli, "train", lambda *a: trained.append(a) or 0)
    cli.main(["--devices", "1"])
    assert trained and not launched
    cli.main(["--devices", "2", "--threads", "2"])
    assert launched and launched[0][0].device_ids == ["0", "1"]
