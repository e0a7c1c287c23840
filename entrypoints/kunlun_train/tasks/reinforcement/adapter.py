"""DQN the way PARL's examples/DQN trains it on CartPole (train.py, cartpole_model.py, cartpole_agent.py).

From the PyPI wheel (parl 2.2.1, paddle backend): the algorithm, `parl.algorithms.DQN` (Q(s, a) against
r + gamma * (1 - terminal) * max_a' Q_target(s', a'), MSE, the update, the target network), the
`parl.Model` / `parl.Agent` base classes, and the replay memory `parl.utils.ReplayMemory` with its own
save/load for checkpoints. From gymnasium: the environments. Ours, because the wheel ships no examples:
the example's CartpoleModel and CartpoleAgent (an MLP obs -> 128 -> 128 -> Q per action; epsilon-greedy
sampling, target sync every 200 learn calls), and its loop as this adapter.

How it sits on the engine:
- One engine step = Global.env_steps epsilon-greedy environment steps into the replay memory (PARL's
  LEARN_FREQ), then ONE `agent.learn` on DataLoader.batch_size transitions sampled from the memory: the
  Task.train_step hook. Before the first step the memory is filled with Replay.warmup_size transitions
  (whole episodes, as PARL's MEMORY_WARMUP_SIZE). The loss is that learn call's TD loss; throughput is
  in env steps/s.
- The optimizer is the engine's (Optimizer.name Adam, as DQN builds it, with the same defaults): it
  replaces the Adam that DQN's constructor made, so the learning rate follows the recipe's
  Optimizer.lr schedule (PARL's example: constant 5e-4), stepped per learn call, and its moments are
  checkpointed in model.pdopt. PARL's `learn` then clears, back-propagates and steps it as before.
- The "dataset" is the environment. The engine's loop still walks an index space: an epoch is
  Global.epoch_steps learn steps; its items carry nothing (DQN makes its own data). Transitions are
  drawn from the memory in train_step, on the main thread, after that step's environment steps: the
  DataLoader reads ahead in a thread, which must not touch the environment (so max_workers = 0).
- Evaluation: Eval.episodes greedy episodes of Eval.env (seeds Eval.seed, Eval.seed + 1, ...), after
  every Eval.every_episodes finished training episodes (PARL: 5 episodes of CartPole-v1 every 50) and
  at the end; the metric is their mean return (`return`, higher is better), which picks best/.
- Checkpoints: the Q network and the engine's optimizer, plus (ckpt-* only, for --resume) the target
  network, the replay memory (PARL's .npz) and the agent's counters. A resumed run starts a new episode.
- Several workers (--devices N): each acts in its own environment with its own memory and seed; the Q
  network's gradients are averaged (paddle.DataParallel), the episode clock counts every worker's
  episodes, the evaluation episodes are shared out. Rank 0's memory is saved.
- Export: the Q network, input `obs` [N, observation size] float32 -> Q values [N, actions]
  (PARL's agent.save_inference_model gives the same); `predict` prints the greedy action and Q values."""
from __future__ import annotations

import json
import logging
import os
import random
import warnings
from collections import deque
from pathlib import Path

import gymnasium as gym
import numpy as np
import paddle

from ...datasets import observations
from ...errors import TrainError
from ..contract import Metric, Task as BaseTask
from . import spec as rl
from .inference import Inference

# PARL picks its backend by `from paddle import fluid`, which Paddle 3 no longer has.
os.environ.setdefault("PARL_BACKEND", "paddle")
if os.environ["PARL_BACKEND"] != "paddle":
    raise TrainError(f"PARL_BACKEND={os.environ['PARL_BACKEND']!r}: this image trains with the paddle backend")
# PARL logs INFO lines (on import: "switching backend framework to [paddle]"; loading a replay memory);
# keep its warnings.
logging.getLogger("PARL").addFilter(lambda record: record.levelno >= logging.WARNING)
import parl  # noqa: E402  (after PARL_BACKEND)
from parl.algorithms import DQN  # noqa: E402
from parl.utils import ReplayMemory  # noqa: E402

# Paddle 3 warns on every `Tensor.max(1, keepdim=True)` (PARL's DQN target) that the call also
# matches a PyTorch signature; the result is right, the warning says nothing to a user.
warnings.filterwarnings("ignore", message=r"\s*Non compatible API")
# PARL's example trains on CartPole-v0 on purpose (200-step episodes); gymnasium calls it out of date.
warnings.filterwarnings("ignore", message=r".*CartPole-v0 is out of date")

MODELS = ("CartpoleModel",)


class CartpoleModel(parl.Model):
    """PARL examples/DQN's Q network: obs -> 128 -> 128 -> one Q value per action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 128):
        super().__init__()
        self.fc1 = paddle.nn.Linear(obs_dim, hidden)
        self.fc2 = paddle.nn.Linear(hidden, hidden)
        self.fc3 = paddle.nn.Linear(hidden, act_dim)

    def forward(self, obs):
        h = paddle.nn.functional.relu(self.fc1(obs))
        h = paddle.nn.functional.relu(self.fc2(h))
        return self.fc3(h)


class CartpoleAgent(parl.Agent):
    """PARL examples/DQN's agent: epsilon-greedy `sample`, greedy `predict`, and `learn`, which syncs
    the target network every `target_update_steps` calls (before the update, as the example does)."""

    def __init__(self, algorithm, model: CartpoleModel, act_dim: int, exploration: rl.EpsilonGreedy,
                 target_update_steps: int, rng: random.Random):
        super().__init__(algorithm)
        self.model = model      # the Q network itself (alg.model is a DataParallel wrapper on several workers)
        self.act_dim, self.exploration, self.rng = act_dim, exploration, rng
        self.target_update_steps = target_update_steps
        self.global_step = 0    # learn calls so far

    def sample(self, obs) -> int:
        if self.exploration.explore(self.rng):
            return self.rng.randrange(self.act_dim)
        return self.predict(obs)

    def predict(self, obs) -> int:
        return int(np.argmax(q_values(self.model, obs)))

    def learn(self, obs, act, reward, next_obs, terminal) -> float:
        """One DQN update on a minibatch from parl.utils.ReplayMemory.sample_batch."""
        if self.global_step % self.target_update_steps == 0:
            self.model.sync_weights_to(self.alg.target_model)   # = alg.sync_target() on the unwrapped network
        self.global_step += 1
        column = lambda a, dtype: paddle.to_tensor(np.asarray(a, dtype=dtype).reshape(len(a), -1))  # noqa: E731
        loss = self.alg.learn(column(obs, "float32"), column(act, "int64"), column(reward, "float32"),
                              column(next_obs, "float32"), column(terminal, "float32"))
        return float(loss)


def q_values(model, obs) -> np.ndarray:
    """The Q network's values for one observation."""
    with paddle.no_grad():
        return model(paddle.to_tensor(np.asarray(obs, dtype="float32")[None])).numpy()[0]


def make_env(name: str, key: str = "Global.env"):
    try:
        env = gym.make(name)
    except gym.error.Error as exc:
        known = ", ".join(n for n in ("CartPole-v0", "CartPole-v1", "Acrobot-v1", "MountainCar-v0")
                          if n in gym.envs.registry)
        raise TrainError(f"{key}={name!r}: {exc} (environments that work offline: {known})") from None
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise TrainError(f"{key}={name!r}: DQN needs discrete actions, this environment has {env.action_space}")
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        raise TrainError(f"{key}={name!r}: the MLP Q network needs a flat observation vector, "
                         f"this environment has {env.observation_space}")
    return env


class Indices(paddle.io.Dataset):
    """An index space for the engine's loop; an item carries nothing but its index (DQN makes its own
    data: see the module's docstring)."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        return (np.int64(index),)


class MeanReturn(Metric):
    """The mean return of the evaluation episodes, over every rank's share of them."""

    def __init__(self):
        self.episodes: list[tuple[int, float, int]] = []   # (episode, return, steps)

    def update(self, outputs, batch) -> None:
        self.episodes += [(e["episode"], e["return"], e["steps"]) for e in outputs]

    def state(self):
        return self.episodes

    def merge(self, states: list) -> dict[str, float]:
        returns = [r for state in states for _, r, _ in state]
        return {"return": float(np.mean(returns)) if returns else 0.0}


class Task(BaseTask):
    unit = "env steps/s"
    eval_unit = "episodes"
    primary = "return"
    max_workers = 0
    input_suffixes = observations.SUFFIXES

    def __init__(self, recipe: dict, data: str | None, world, options):
        super().__init__(recipe, data, world, options)
        rl.no_dataset(data)
        g, arch, alg = recipe["Global"], recipe["Arch"], recipe["Algorithm"]
        evaluation = recipe.get("Eval", {})
        if arch.get("name") not in MODELS:
            raise TrainError(f"Arch.name={arch.get('name')!r}: expected one of {', '.join(MODELS)}")
        if alg.get("name") != "DQN":
            raise TrainError(f"Algorithm.name={alg.get('name')!r}: this image trains parl.algorithms.DQN")
        self.env_name, self.eval_env_name = str(g["env"]), str(evaluation.get("env") or g["env"])
        self.env_steps = rl.positive(recipe, "Global", "env_steps")
        self.epoch_steps = rl.positive(recipe, "Global", "epoch_steps")
        self.batch = rl.positive(recipe, "DataLoader", "batch_size")
        self.hidden = rl.positive(recipe, "Arch", "hidden_size")
        self.target_update_steps = rl.positive(recipe, "Algorithm", "target_update_steps")
        self.eval_episodes = rl.positive(recipe, "Eval", "episodes")
        self.eval_seed = rl.positive(recipe, "Eval", "seed", 0)
        self.clock = rl.EpisodeClock(rl.positive(recipe, "Eval", "every_episodes", 0))
        self.warmup = max(rl.positive(recipe, "Replay", "warmup_size", 0), self.batch)
        memory_size = rl.positive(recipe, "Replay", "memory_size")
        if self.warmup > memory_size:
            raise TrainError(f"Replay.warmup_size / DataLoader.batch_size ({self.warmup}) exceed "
                             f"Replay.memory_size ({memory_size})")
        self.seed = int(g.get("seed", 0))

        self.env = make_env(self.env_name)
        self.eval_env = make_env(self.eval_env_name, "Eval.env")
        self.obs_dim, self.act_dim = self.env.observation_space.shape[0], int(self.env.action_space.n)
        if (self.eval_env.observation_space.shape[0], int(self.eval_env.action_space.n)) != (self.obs_dim, self.act_dim):
            raise TrainError(f"Eval.env={self.eval_env_name!r}: not the same observations and actions as "
                             f"Global.env={self.env_name!r}")
        # PARL's ReplayMemory samples with numpy's global generator; acting uses our own.
        self.rng = random.Random(world.seed(self.seed))
        np.random.seed(world.seed(self.seed))
        self.memory = ReplayMemory(memory_size, self.obs_dim, 0)
        self.exploration = rl.EpsilonGreedy(float(alg["e_greed"]), float(alg["e_greed_decrement"]),
                                            float(alg["e_greed_min"]), float(alg.get("e_greed_noise", 0.0)))
        self.alg = self.agent = None
        self.env_steps_done = 0
        self.episodes = 0                                # training episodes finished (after the warm-up)
        self.returns: deque[float] = deque(maxlen=100)   # their returns, the latest
        self._episode_return = 0.0
        self._obs = None

    # --- data: the environment -------------------------------------------------------------------
    def datasets(self):
        return Indices(self.epoch_steps * self.batch), Indices(self.eval_episodes)

    def describe_data(self) -> str:
        text = (f"{self.env_name} episodes (no dataset): {self.env_steps} env steps + 1 learn step on "
                f"{self.batch} replayed transitions per step; evaluation: {self.eval_episodes} greedy episodes "
                f"of {self.eval_env_name}" + (f" every {self.clock.interval} training episodes" if self.clock.interval else ""))
        if self.episodes:
            last = list(self.returns)[-10:]
            text += f"; {self.episodes} training episodes, mean return of the last {len(last)} {np.mean(last):.1f}"
        return text

    def samples(self, batch) -> float:
        return float(self.env_steps)

    # --- model and update ------------------------------------------------------------------------
    def build_model(self):
        model = CartpoleModel(self.obs_dim, self.act_dim, self.hidden)
        lr = float(self.recipe["Optimizer"]["lr"]["learning_rate"])
        self.alg = DQN(model, gamma=float(self.recipe["Algorithm"]["gamma"]), lr=lr)
        self.agent = CartpoleAgent(self.alg, model, self.act_dim, self.exploration, self.target_update_steps, self.rng)
        return model

    def loss(self, model, batch):
        raise TrainError("DQN's update is PARL's agent.learn (Task.train_step), not a supervised loss")

    def train_step(self, model, batch, optimizer):
        # The engine's network (a DataParallel wrapper on several workers: PARL's learn then averages
        # the gradients) and the engine's optimizer, in place of the Adam DQN made for itself.
        self.alg.model, self.alg.optimizer = model, optimizer
        if self._obs is None:
            self._start()
        for _ in range(self.env_steps):
            self._act()
        return self.agent.learn(*self.memory.sample_batch(self.batch))

    def _start(self) -> None:
        """A new episode; on a fresh run first the warm-up: whole episodes until the memory holds
        Replay.warmup_size transitions (PARL's MEMORY_WARMUP_SIZE), not counted as training episodes."""
        self._reset()
        if len(self.memory) >= self.warmup:
            return
        while len(self.memory) < self.warmup or self._episode_return:
            self._act(counted=False)

    def _reset(self, seed: int | None = None) -> None:
        self._obs, _ = self.env.reset(seed=self.rng.randrange(2 ** 31) if seed is None else seed)
        self._episode_return = 0.0

    def _act(self, counted: bool = True) -> None:
        action = self.agent.sample(self._obs)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        # Only a real end of the episode stops bootstrapping; a time-limit cut (truncated) does not.
        self.memory.append(self._obs, action, reward, next_obs, terminated)
        self.env_steps_done += 1
        self._episode_return += float(reward)
        if terminated or truncated:
            if counted:
                self.episodes += 1
                self.returns.append(self._episode_return)
            self._reset()
        else:
            self._obs = next_obs

    # --- evaluation ------------------------------------------------------------------------------
    @property
    def has_clock(self) -> bool:
        return bool(self.clock.interval)

    def eval_due(self, step: int) -> bool:
        episodes = self.episodes
        if self.world.distributed:   # every rank must decide alike: count the job's episodes
            import paddle.distributed as dist
            total = paddle.to_tensor([episodes], dtype="int64")
            dist.all_reduce(total)
            episodes = int(total)
        return self.clock.due(episodes)

    def metric(self) -> Metric:
        return MeanReturn()

    def evaluate_batch(self, model, batch):
        network = getattr(model, "_layers", model)   # acting needs no DataParallel
        return [self._greedy_episode(network, int(i)) for i in batch[0].numpy()]

    def _greedy_episode(self, network, index: int) -> dict:
        obs, _ = self.eval_env.reset(seed=self.eval_seed + index)
        observations_seen, actions, values, total = [], [], [], 0.0
        while True:
            q = q_values(network, obs)
            action = int(np.argmax(q))
            observations_seen.append([float(v) for v in obs])
            actions.append(action)
            values.append([float(v) for v in q])
            obs, reward, terminated, truncated, _ = self.eval_env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return {"episode": index, "seed": self.eval_seed + index, "return": total, "steps": len(actions),
                "observations": observations_seen, "actions": actions, "q_values": values}

    def predictions(self, outputs, batch) -> list[dict]:
        """Per evaluation episode: its return and every step's observation, greedy action and Q values."""
        return [{"input": f"episode-{e['episode']:04d}", **{k: v for k, v in e.items() if k != "episode"}}
                for e in outputs]

    # --- export and prediction -------------------------------------------------------------------
    def input_spec(self) -> list:
        return [paddle.static.InputSpec([None, self.obs_dim], "float32", "obs")]

    def inference_config(self) -> dict:
        return {"PreProcess": {"observation_dim": self.obs_dim, "env": self.eval_env_name},
                "PostProcess": {"name": "GreedyAction", "actions": self.act_dim}}

    def predict(self, predictor, config: dict, files: list, labels: dict | None, args):
        """The greedy action (argmax of the Q values) for each observation of each file (Inference),
        4096 observations a predictor run."""
        inference = Inference(config, labels)
        for path in files:
            rows = observations.read(path, inference.dim)
            for start in range(0, len(rows), 4096):
                chunk = rows[start:start + 4096]
                [values] = predictor.named({"obs": np.asarray([obs for _, obs in chunk], dtype="float32")}).values()
                for (line, obs), q in zip(chunk, values):
                    result, shown = inference.answer(obs, q)
                    yield f"{path}:{line}", result, shown

    @staticmethod
    def inference(config: dict, directory: Path | None = None, labels: dict | None = None) -> "Inference":
        """The predict route's pipeline for the export with `config` (its inference.yml)."""
        return Inference(config, labels)

    # --- checkpoints: what --resume needs --------------------------------------------------------
    def save_state(self, directory) -> None:
        self.agent.save(str(directory / "target.pdparams"), model=self.alg.target_model)
        self.memory.save(str(directory / "replay.npz"))
        (directory / "agent.json").write_text(json.dumps({
            "env": self.env_name, "obs_dim": self.obs_dim, "learn_steps": self.agent.global_step,
            "env_steps": self.env_steps_done, "epsilon": self.exploration.value, "episodes": self.episodes,
            "next_eval_episode": self.clock.next_at, "replay_size": len(self.memory),
            "latest_returns": list(self.returns)}, indent=2) + "\n")

    def load_state(self, directory) -> None:
        try:
            state = json.loads((directory / "agent.json").read_text())
        except (OSError, ValueError) as exc:
            raise TrainError(f"{directory}/agent.json: cannot resume DQN from it ({exc})") from None
        if state["env"] != self.env_name or state.get("obs_dim", self.obs_dim) != self.obs_dim:
            raise TrainError(f"{directory}: a checkpoint of {state['env']}, but Global.env={self.env_name}")
        self.agent.restore(str(directory / "target.pdparams"), model=self.alg.target_model)
        try:
            self.memory.load(str(directory / "replay.npz"))
        except Exception as exc:   # numpy's zip errors: name the file
            raise TrainError(f"{directory}/replay.npz: not a readable replay memory ({type(exc).__name__}: {exc})") from None
        self.agent.global_step, self.env_steps_done = int(state["learn_steps"]), int(state["env_steps"])
        self.exploration.value = float(state["epsilon"])
        self.episodes = int(state["episodes"])
        self.clock.next_at = int(state["next_eval_episode"])
        self.returns = deque((float(r) for r in state["latest_returns"]), maxlen=self.returns.maxlen)
        # Fresh random streams (not the ones the first run already used) and a new episode.
        self.rng.seed(f"{self.world.seed(self.seed)}/{self.env_steps_done}")
        np.random.seed(self.rng.randrange(2 ** 32))

