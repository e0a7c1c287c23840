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
    world = parallel.World.from_env({"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "2", "KUNLUN_LAUNCHED": "1"})
    assert (world.rank, world.size, world.distributed, world.leader) == (1, 2, True, False)
    assert parallel.World.from_env({}) == parallel.World(0, 1)


def test_paddle_variables_set_by_others_do_not_make_a_worker():
    """A PaddleJob pod carries PADDLE_TRAINER_ID/PADDLE_TRAINERS_NUM before anything is launched."""
    operator = {"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "2", "PATH": "/bin"}
    assert parallel.World.from_env(operator) == parallel.World(0, 1)
    env = parallel.launcher_env(operator)
    assert env["KUNLUN_LAUNCHED"] == "1" and env["PATH"] == "/bin" and not any(k.startswith("PADDLE_") for k in env)


def test_ranks_get_disjoint_shards_and_different_seeds():
    items = list(range(5))
    shards = [parallel.World(r, 2).shard(items) for r in (0, 1)]
    assert shards == [[0, 2, 4], [1, 3]]
    assert parallel.World(0, 8).shard([7]) == [7] and parallel.World(3, 8).shard([7]) == [7]   # never empty
    assert parallel.World(0, 2).seed(42) != parallel.World(1, 2).seed(42)


def test_one_worker_trains_without_the_launcher(monkeypatch, tmp_path):
    """--devices 1 (or none) trains in this process; the launcher is only for two or more."""
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"Bundle": {"task": "classification"}, "recipes": {"r": {"Global": {"steps": 1}, "DataLoader": {"batch_size": 1}}}}')
    monkeypatch.setenv("KUNLUN_RECIPE", str(recipe))
    launched, trained = [], []
    monkeypatch.setattr(cli, "launch", lambda *a: launched.append(a) or 0)
    monkeypatch.setattr(cli, "run", lambda *a: trained.append(a) or 0)
    cli.main(["--devices", "1"])
    assert trained and not launched
    cli.main(["--devices", "2", "--threads", "2"])
    assert launched and launched[0][0].device_ids == ["0", "1"]


# --- multi-node -------------------------------------------------------------------------------

def test_one_node_needs_no_rendezvous():
    assert parallel.parse_nodes(1, None, None) is None


@pytest.mark.parametrize("master, rank, message", [
    (None, 0, "needs --master HOST:PORT"),
    ("rank0", 0, "needs --master HOST:PORT"),
    ("rank0:8090", None, "needs --rank between 0 and 1"),
    ("rank0:8090", 2, "needs --rank between 0 and 1"),
])
def test_a_multi_node_job_needs_a_master_and_a_rank(master, rank, message):
    with pytest.raises(TrainError, match=message):
        parallel.parse_nodes(2, master, rank)


def test_rank_0_serves_the_rendezvous_and_the_others_dial_it():
    """Paddle's launcher starts the rendezvous server only for its own IP or 127.0.0.1."""
    assert parallel.Nodes(2, "job-0.job:8090", 0).launcher_master() == "127.0.0.1:8090"
    assert parallel.Nodes(2, "job-0.job:8090", 1).launcher_master() == "job-0.job:8090"
    cmd = parallel.launch_command(["0"], [], "/tmp/logs", nodes=parallel.Nodes(4, "10.0.0.5:8090", 3))
    assert cmd[3:11] == ["--nproc_per_node", "1", "--master", "10.0.0.5:8090", "--nnodes", "4", "--rank", "3"]


def test_launcher_options_are_not_passed_on_to_the_workers():
    argv = ["--nnodes", "2", "--master=r0:8090", "--rank", "1", "--steps", "2"]
    assert parallel.worker_args(argv, 1) == ["--steps", "2", "--threads", "1"]


def test_the_rank_can_come_from_a_kubernetes_indexed_job(monkeypatch, tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"Bundle": {"task": "classification"}, "recipes": {"r": {"Global": {"steps": 1}, "DataLoader": {"batch_size": 1}}}}')
    monkeypatch.setenv("KUNLUN_RECIPE", str(recipe))
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("KUNLUN_NNODES", "2")
    monkeypatch.setenv("KUNLUN_MASTER", "job-0.job:8090")
    args, _ = cli.prepare([])
    assert args.nodes == parallel.Nodes(2, "job-0.job:8090", 1)


# --- the collectives' network interface (gloo on CPU, BKCL on Kunlun cards) -------------------

def test_one_node_talks_over_loopback():
    assert parallel.collective_env(None, env={}) == {"GLOO_SOCKET_IFNAME": "lo", "BKCL_SOCKET_IFNAME": "lo"}


def test_several_nodes_use_the_interface_that_routes_to_the_master():
    """Not docker0 or a veth that happens to be listed first: the one with this node's address towards the master."""
    nodes = parallel.Nodes(2, "job-0.job:8090", 1)
    found = parallel.collective_env(nodes, env={}, find_interfaces=lambda: {"lo": "127.0.0.1", "docker0": "172.17.0.1",
                                                                            "eth0": "10.2.3.4"},
                                    find_source=lambda host, port: "10.2.3.4")
    assert found == {"GLOO_SOCKET_IFNAME": "eth0", "BKCL_SOCKET_IFNAME": "eth0"}


def test_an_interface_the_user_set_wins():
    assert parallel.collective_env(None, env={"GLOO_SOCKET_IFNAME": "ib0", "BKCL_SOCKET_IFNAME": "ib0"}) == {}
    assert parallel.collective_env(None, env={"BKCL_SOCKET_IFNAME": "ib0"}) == {"GLOO_SOCKET_IFNAME": "lo"}


def test_no_interface_with_the_route_source_is_a_clear_error():
    nodes = parallel.Nodes(2, "job-0.job:8090", 1)
    with pytest.raises(TrainError, match="no interface has 10.9.9.9.*set GLOO_SOCKET_IFNAME"):
        parallel.collective_env(nodes, env={}, find_interfaces=lambda: {"lo": "127.0.0.1"},
                                find_source=lambda host, port: "10.9.9.9")


def test_this_hosts_interfaces_and_route_are_read():
    assert parallel.interfaces().get("lo") == "127.0.0.1"
    assert parallel.route_source("127.0.0.1", 9) == "127.0.0.1"
