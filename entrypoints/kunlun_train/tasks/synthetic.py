"""The synthetic data of smoke runs: every item made by its own generator, seeded by the run's seed
and the item's index, so each run, rank and loader worker sees the same items."""
from __future__ import annotations

import numpy as np
import paddle


class Seeded(paddle.io.Dataset):
    """`count` items; a subclass's `make(rng, index)` builds one from its seeded generator."""

    def __init__(self, count: int, seed: int):
        super().__init__()
        self.count, self.seed = count, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        return self.make(np.random.default_rng(self.seed * 100003 + index), index)

    def make(self, rng: np.random.Generator, index: int):
        raise NotImplementedError
