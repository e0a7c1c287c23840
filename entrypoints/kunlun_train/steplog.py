"""The per-step line and the final JSON summary, in one format for every model:

    [resnet50] step 3/10 | epoch 1 | loss 6.912345 | lr 0.1 | 1.42 images/s | 1.408 s/step | cpu x2
    {"event": "summary", "model": "resnet50", ...}
"""
from __future__ import annotations

import json
import math
import sys
import time


class StepLog:
    def __init__(self, model: str, unit: str, device: str, out=sys.stdout, started: float | None = None,
                 rank: int | None = None):
        """rank: set on the ranks other than 0 of a distributed job; their lines say so, and their
        summary is a "rank summary" (rank 0's is the job's)."""
        self.model, self.unit, self.device, self.out, self.rank = model, unit, device, out, rank
        self.tag = model if rank is None else f"{model} rank {rank}"
        self.started = time.monotonic() if started is None else started   # process start, for latency
        self.first_step_at: float | None = None
        self.records: list[tuple[int, float, float, float]] = []   # step, loss, seconds, samples

    def step(self, step: int, total: int, loss: float, seconds: float, samples: float,
             lr: float | None = None, epoch: int | None = None) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.monotonic() - self.started
        self.records.append((step, loss, seconds, samples))
        rate = samples / seconds if seconds > 0 else float("inf")
        where = f" | epoch {epoch}" if epoch is not None else ""
        schedule = f" | lr {lr:.6g}" if lr is not None else ""
        print(f"[{self.tag}] step {step}/{total}{where} | loss {loss:.6f}{schedule} | {rate:.2f} {self.unit} | "
              f"{seconds:.3f} s/step | {self.device}", file=self.out, flush=True)

    def summary(self, **extra) -> dict:
        # The first step includes one-off work (graph building, allocation); leave it out of the
        # rates when there is more than one step.
        steady = self.records[1:] if len(self.records) > 1 else self.records
        seconds = sum(r[2] for r in steady)
        samples = sum(r[3] for r in steady)
        losses = [r[1] for r in self.records]
        result = {
            "event": "summary" if self.rank is None else "rank summary",
            "model": self.model,
            **({"rank": self.rank} if self.rank is not None else {}),
            "device": self.device,
            "steps": len(self.records),
            "first_step": self.records[0][0] if self.records else None,
            "last_step": self.records[-1][0] if self.records else None,
            "final_loss": losses[-1] if losses else None,
            "loss_finite": all(math.isfinite(x) for x in losses),
            "mean_step_seconds": round(seconds / len(steady), 4) if steady else None,
            "throughput": round(samples / seconds, 3) if seconds else None,
            "unit": self.unit,
            "first_step_after_seconds": round(self.first_step_at, 3) if self.first_step_at else None,
            **extra,
        }
        print(json.dumps(result, sort_keys=False), file=self.out, flush=True)
        return result
