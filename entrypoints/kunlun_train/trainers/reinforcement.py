"""DQN with PARL (`parl.algorithms.DQN`, paddle backend) on a gymnasium environment (CartPole-v1),
after PARL's examples/DQN: a 3-layer MLP `parl.Model`, a `parl.Agent` acting epsilon-greedily, a
replay memory, the target network synced every Algorithm.target_update_steps learn steps.

One trainer step = Global.env_steps environment steps (epsilon-greedy actions, each transition
appended to the replay memory; PARL's LEARN_FREQ) followed by ONE DQN learn step on
DataLoader.batch_size transitions sampled from the memory. The loss is that learn step's TD loss
(mean squared error between Q(s, a) and r + gamma * (1 - terminal) * max_a' Q_target(s', a')); the
throughput unit is env steps/s. Before step 1 the memory is filled with Replay.warmup_size
epsilon-greedy transitions (at least one minibatch), as PARL's MEMORY_WARMUP_SIZE.

No dataset: --data is an error. Several workers (--devices N): each runs its own environment and
replay memory with its own seed, and the Q network's gradients are averaged across workers
(paddle.DataParallel), so the weights stay identical: synchronous data-parallel DQN.

Checkpoints hold the Q network, the target network, the Adam state, the replay memory and the
agent's counters (learn steps, env steps, epsilon, episodes). The environment's own state is not
saved: a resumed run starts a new episode."""
from __future__ import annotations

import json
import logging
import os
import random
import warnings
from collections import deque

import numpy as np
import paddle

from .. import parallel
from ..errors import TrainError
from .replay import EpsilonGreedy, ReplayMemory, no_dataset, positive

# PARL picks its backend by `from paddle import fluid`, which Paddle 3 no longer has.
os.environ.setdefault("PARL_BACKEND", "paddle")
if os.environ["PARL_BACKEND"] != "paddle":
    raise TrainError(f"PARL_BACKEND={os.environ['PARL_BACKEND']!r}: this image trains with the paddle backend")
# PARL logs an INFO line per import ("switching backend framework to [paddle]"); keep its warnings.
logging.getLogger("PARL").addFilter(lambda record: record.levelno >= logging.WARNING)
import parl  # noqa: E402  (after PARL_BACKEND)
from parl.algorithms import DQN  # noqa: E402

# Paddle 3 warns on every `Tensor.max(1, keepdim=True)` (PARL's DQN target) that the call also
# matches a PyTorch signature; the result is right, the warning says nothing to a user.
warnings.filterwarnings("ignore", message=r"\s*Non compatible API")

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
    """PARL examples/DQN's agent: epsilon-greedy sampling, greedy prediction, target sync every
    `target_update_steps` learn steps (before the learn step, as PARL does)."""

    def __init__(self, algorithm, model: CartpoleModel, act_dim: int, epsilon: EpsilonGreedy,
                 target_update_steps: int, rng: random.Random):
        super().__init__(algorithm)
        self.model = model      # the unwrapped parl.Model (alg.model may be a DataParallel wrapper)
        self.act_dim, self.epsilon, self.rng = act_dim, epsilon, rng
        self.target_update_steps = target_update_steps
        self.global_step = 0    # learn steps taken

    def sample(self, obs) -> int:
        if self.epsilon.explore(self.rng):
            return self.rng.randrange(self.act_dim)
        return self.predict(obs)

    def predict(self, obs) -> int:
        with paddle.no_grad():
            q = self.model(paddle.to_tensor(np.asarray(obs, dtype="float32")[None]))
        return int(q.argmax(axis=-1).numpy()[0])

    def sync_target(self) -> None:
        # DQN.sync_target does the same through alg.model, which is DataParallel on several workers.
        self.model.sync_weights_to(self.alg.target_model)

    def learn(self, obs, action, reward, next_obs, terminal) -> float:
        """One DQN update on a minibatch: obs/next_obs (B, obs_dim) float32, the rest (B, 1)."""
        if self.global_step % self.target_update_steps == 0:
            self.sync_target()
        self.global_step += 1
        loss = self.alg.learn(*(paddle.to_tensor(a) for a in (obs, action, reward, next_obs, terminal)))
        return float(loss)


def make_env(name: str):
    import gymnasium as gym
    try:
        env = gym.make(name)
    except gym.error.Error as exc:
        known = ", ".join(n for n in ("CartPole-v1", "CartPole-v0", "Acrobot-v1", "MountainCar-v0")
                          if n in gym.envs.registry)
        raise TrainError(f"Global.env={name!r}: {exc} (environments that work offline: {known})") from None
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise TrainError(f"Global.env={name!r}: DQN needs discrete actions, this environment has {env.action_space}")
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        raise TrainError(f"Global.env={name!r}: the MLP Q network needs a flat observation vector, "
                         f"this environment has {env.observation_space}")
    return env


class Trainer:
    unit = "env steps/s"

    def __init__(self, recipe: dict, data: str | None, world: parallel.World = parallel.World()):
        no_dataset(data)
        g, arch, alg, opt = recipe["Global"], recipe["Arch"], recipe["Algorithm"], recipe["Optimizer"]
        if arch.get("name") not in MODELS:
            raise TrainError(f"Arch.name={arch.get('name')!r}: expected one of {', '.join(MODELS)}")
        if alg.get("name") != "DQN":
            raise TrainError(f"Algorithm.name={alg.get('name')!r}: this image trains parl.algorithms.DQN")
        if opt.get("name") != "Adam":
            raise TrainError(f"Optimizer.name={opt.get('name')!r}: parl.algorithms.DQN optimises with Adam")
        self.world = world
        self.env_name = str(g["env"])
        self.env_steps = positive(recipe, "Global", "env_steps")
        self.batch = positive(recipe, "DataLoader", "batch_size")
        self.seed = int(g.get("seed", 0))
        self.rng = random.Random(world.seed(self.seed))

        self.env = make_env(self.env_name)
        obs_dim, act_dim = self.env.observation_space.shape[0], int(self.env.action_space.n)
        self.memory = ReplayMemory(positive(recipe, "Replay", "memory_size"), obs_dim)
        warmup = max(positive(recipe, "Replay", "warmup_size", 0), self.batch)
        if warmup > self.memory.capacity:
            raise TrainError(f"Replay.warmup_size / DataLoader.batch_size ({warmup}) exceed "
                             f"Replay.memory_size ({self.memory.capacity})")

        paddle.seed(self.seed)   # the same initial weights on every worker
        self.model = CartpoleModel(obs_dim, act_dim, positive(recipe, "Arch", "hidden_size"))
        self.alg = DQN(self.model, gamma=float(alg["gamma"]), lr=float(opt["learning_rate"]))
        if world.distributed:   # average the Q network's gradients across workers
            self.alg.model = parallel.wrap(self.model, world)
        self.agent = CartpoleAgent(
            self.alg, self.model, act_dim,
            EpsilonGreedy(float(alg["e_greed"]), float(alg["e_greed_decrement"]), float(alg["e_greed_min"])),
            positive(recipe, "Algorithm", "target_update_steps"), self.rng)

        self.env_steps_done = 0
        self.episodes = 0                           # finished episodes
        self.returns: deque[float] = deque(maxlen=100)   # the latest episodes' returns
        self._return = 0.0
        self._obs = self._reset(world.seed(self.seed))
        while len(self.memory) < warmup:
            self._act()

    # --- acting --------------------------------------------------------------------------

    def _reset(self, seed: int | None = None):
        obs, _info = self.env.reset(seed=seed)
        self._return = 0.0
        return obs

    def _act(self) -> None:
        action = self.agent.sample(self._obs)
        next_obs, reward, terminated, truncated, _info = self.env.step(action)
        # Only a real end of the episode stops bootstrapping; a time-limit cut (truncated) does not.
        self.memory.append(self._obs, action, reward, next_obs, terminated)
        self.env_steps_done += 1
        self._return += float(reward)
        if terminated or truncated:
            self.episodes += 1
            self.returns.append(self._return)
            self._obs = self._reset()
        else:
            self._obs = next_obs

    # --- the protocol --------------------------------------------------------------------

    def describe_data(self) -> str:
        text = (f"{self.env_name} episodes (no dataset): {self.env_steps} env steps + 1 learn step "
                f"on {self.batch} replayed transitions per step")
        if self.episodes:
            last = list(self.returns)[-10:]
            text += f"; {self.episodes} episodes, mean return of the last {len(last)} {np.mean(last):.1f}"
        return text

    def samples_per_step(self) -> int:
        return self.env_steps

    def step(self) -> float:
        for _ in range(self.env_steps):
            self._act()
        sampled = self.memory.sample(self.batch, self.rng)
        dtypes = ("float32", "int64", "float32", "float32", "float32")   # obs, action, reward, next_obs, terminal
        return self.agent.learn(*(np.asarray(values, dtype=dtype).reshape(self.batch, -1)
                                  for values, dtype in zip(sampled, dtypes)))

    def save(self, directory) -> None:
        self.agent.save(str(directory / "model.pdparams"), model=self.model)
        self.agent.save(str(directory / "target.pdparams"), model=self.alg.target_model)
        paddle.save(self.alg.optimizer.state_dict(), str(directory / "model.pdopt"))
        self.memory.save(directory / "replay.bin")
        (directory / "agent.json").write_text(json.dumps({
            "env": self.env_name, "learn_steps": self.agent.global_step, "env_steps": self.env_steps_done,
            "epsilon": self.agent.epsilon.value, "episodes": self.episodes, "latest_returns": list(self.returns)},
            indent=2) + "\n")

    def load(self, directory) -> None:
        state = json.loads((directory / "agent.json").read_text())
        if state["env"] != self.env_name:
            raise TrainError(f"{directory}: checkpoint of {state['env']}, but Global.env={self.env_name}")
        self.agent.restore(str(directory / "model.pdparams"), model=self.model)
        self.agent.restore(str(directory / "target.pdparams"), model=self.alg.target_model)
        self.alg.optimizer.set_state_dict(paddle.load(str(directory / "model.pdopt")))
        self.memory.load(directory / "replay.bin")
        self.agent.global_step, self.env_steps_done = int(state["learn_steps"]), int(state["env_steps"])
        self.agent.epsilon.value = float(state["epsilon"])
        self.episodes = int(state["episodes"])
        self.returns = deque((float(r) for r in state["latest_returns"]), maxlen=self.returns.maxlen)
        # A fresh random stream and a new episode: not the ones the first run already used.
        self.rng.seed(f"{self.world.seed(self.seed)}/{self.env_steps_done}")
        self._obs = self._reset(self.rng.randrange(2**31))
