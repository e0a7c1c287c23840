"""The exported Q network's greedy policy, for `predict` (adapter.py) and the server's predict route
(serving/routes.py). Neither PARL nor gymnasium: serving needs neither."""
from __future__ import annotations

import json
import math

import numpy as np

from ...datasets import observations
from ...errors import TrainError


class Inference:
    """The exported Q network's greedy policy: an observation of PreProcess.observation_dim numbers in,
    the action with the largest Q value and the Q values out. `predict` (every observation of its
    .jsonl / .csv files) and the server's predict route (one a request: JSON {"observation": [...]}
    or a bare array, or a .jsonl / .csv line as text) both run this."""

    input_name = "obs"
    input_names = ("obs",)
    body = "json"

    def __init__(self, config: dict, labels: dict | None = None):
        self.dim = int(config["PreProcess"]["observation_dim"])
        self.labels = labels

    def preprocess(self, data, what: str) -> dict:
        """An observation: a list of numbers, {"observation": [...]} ({"obs": ...} as .jsonl has it), or
        the text of one .jsonl or .csv line."""
        if isinstance(data, str):
            text = data.strip()
            try:
                data = json.loads(text) if text.startswith(("[", "{")) else [float(v) for v in text.split(",")]
            except ValueError:
                raise TrainError(f"{what}: expected an observation: JSON {{\"observation\": [...]}}, or "
                                 f"{observations.EXAMPLE}") from None
        if isinstance(data, dict):
            key = "observation" if "observation" in data else "obs"
            if key not in data:
                raise TrainError(f"{what}: expected JSON {{\"observation\": [{self.dim} numbers]}}")
            data = data[key]
        if not isinstance(data, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
            raise TrainError(f"{what}: \"observation\": expected a list of {self.dim} numbers")
        if len(data) != self.dim:
            raise TrainError(f"{what}: \"observation\": {len(data)} values, but the model takes observations "
                             f"of {self.dim}")
        if not all(math.isfinite(v) for v in data):
            raise TrainError(f"{what}: \"observation\": not a finite number in {data}")
        obs = [float(v) for v in data]
        return {"obs": np.asarray([obs], dtype="float32"), "observation": obs}

    def postprocess(self, outputs: dict, prepared: dict) -> tuple[dict, str]:
        return self.answer(prepared["observation"], next(iter(outputs.values()))[0])

    def answer(self, obs: list, q) -> tuple[dict, str]:
        action = int(np.argmax(q))
        name = (self.labels or {}).get(action)
        result = {"observation": obs, "action": action, "q_values": [round(float(v), 6) for v in q]}
        if name:
            result["action_name"] = name
        return result, f"action {action}{f' {name}' if name else ''} | q " + " ".join(f"{v:.4f}" for v in q)

    def example(self, rows: int) -> dict[str, np.ndarray]:
        return {"obs": np.zeros((rows, self.dim), "float32")}
