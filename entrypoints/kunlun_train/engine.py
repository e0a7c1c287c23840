"""The training engine, shaped like PaddleClas's ppcls/engine/engine.py and PaddleDetection's
ppdet/engine/trainer.py: one object owns the loop, the learning-rate schedule, the input pipeline,
evaluation and the best checkpoint, checkpoints, logs and export; a task (tasks/) plugs in its
model, data, loss and metric.

Everything here is Paddle's own: paddle.io (DataLoader, DistributedBatchSampler), paddle.optimizer
and paddle.optimizer.lr, paddle.jit.save. Runs in the images (it imports Paddle)."""
from __future__ import annotations

import json
import math
import platform
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import paddle

from . import cadence, check, checkpoint, parallel, resources, schedule, shm
from .errors import TrainError
from .steplog import StepLog


class ResumableSampler(paddle.io.DistributedBatchSampler):
    """Paddle's sharded, per-epoch shuffled batch sampler that can start an epoch part-way (a resumed
    run continues with the batch after the last one trained, in the same order)."""

    skip = 0

    def __iter__(self):
        for i, batch in enumerate(super().__iter__()):
            if i >= self.skip:
                yield batch
        self.skip = 0


class ShardSampler(paddle.io.BatchSampler):
    """Evaluation batches of this rank's shard: samples rank, rank + N, ... with no padding, so the
    ranks together see every sample exactly once and the merged metric is the whole split's."""

    def __init__(self, count: int, batch_size: int, world: parallel.World):
        self.indices = list(range(world.rank, count, world.size))
        self.batch_size = batch_size

    def __iter__(self):
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start:start + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)


def scheduler(plan: schedule.Plan):
    """A schedule.Plan as paddle.optimizer.lr schedulers (LinearWarmup around the decay)."""
    lr = paddle.optimizer.lr
    after = plan.total_steps - plan.warmup_steps
    if plan.name == "Piecewise":
        # LinearWarmup runs its inner scheduler from 0 after the warm-up: shift the boundaries back.
        inner = lr.PiecewiseDecay([b - plan.warmup_steps for b in plan.boundaries], plan.values) \
            if plan.boundaries else lr.LambdaDecay(plan.values[0], lambda _: 1.0)
    elif plan.name == "Cosine":
        inner = lr.CosineAnnealingDecay(plan.learning_rate, T_max=max(1, after), eta_min=plan.end_lr)
    elif plan.name in ("Polynomial", "Linear"):
        inner = lr.PolynomialDecay(plan.learning_rate, decay_steps=max(1, after), end_lr=plan.end_lr,
                                   power=1.0 if plan.name == "Linear" else plan.power)
    else:
        inner = lr.LambdaDecay(plan.learning_rate, lambda _: 1.0)
    if plan.warmup_steps:
        return lr.LinearWarmup(inner, plan.warmup_steps, plan.warmup_start_lr, plan.learning_rate)
    return inner


def optimizer(section: dict, lr, parameters: list):
    """The recipe's Optimizer section: Momentum (L2 as PaddleClas's regularizer), SGD, Adam or AdamW
    (decoupled weight decay, except for the parameters whose names contain one of `no_decay`), with an
    optional global-norm gradient clip."""
    name = section.get("name", "Momentum")
    decay = float(section.get("weight_decay", 0.0))
    clip = paddle.nn.ClipGradByGlobalNorm(float(section["clip_norm"])) if section.get("clip_norm") else None
    l2 = paddle.regularizer.L2Decay(decay) if decay else None
    if name == "Momentum":
        return paddle.optimizer.Momentum(lr, momentum=float(section.get("momentum", 0.9)), parameters=parameters,
                                         use_nesterov=bool(section.get("nesterov", False)), weight_decay=l2,
                                         grad_clip=clip)
    if name == "SGD":
        return paddle.optimizer.SGD(lr, parameters=parameters, weight_decay=l2, grad_clip=clip)
    if name == "Adam":
        return paddle.optimizer.Adam(lr, beta1=float(section.get("beta1", 0.9)), beta2=float(section.get("beta2", 0.999)),
                                     epsilon=float(section.get("epsilon", 1e-8)), parameters=parameters,
                                     weight_decay=l2, grad_clip=clip)
    if name == "AdamW":
        names, exempt = {p.name: p for p in parameters}, tuple(section.get("no_decay") or ())
        return paddle.optimizer.AdamW(lr, beta1=float(section.get("beta1", 0.9)), beta2=float(section.get("beta2", 0.999)),
                                      epsilon=float(section.get("epsilon", 1e-8)), parameters=parameters,
                                      weight_decay=decay, grad_clip=clip,
                                      apply_decay_param_fun=lambda n: n in names and not any(e in n for e in exempt))
    raise TrainError(f"Optimizer.name={name!r}: expected Momentum, SGD, Adam or AdamW")


def load_weights(path: str | Path) -> tuple[dict, Path]:
    """A .pdparams file, or a checkpoint directory holding model.pdparams; clear errors otherwise."""
    path = Path(path)
    file = path / "model.pdparams" if path.is_dir() else path
    if not file.is_file():
        raise TrainError(f"{path}: no such weights file (expected a .pdparams file or a checkpoint directory "
                         "with model.pdparams; is it mounted into the container?)")
    try:
        return paddle.load(str(file)), file
    except Exception as exc:   # a truncated or foreign file: Paddle's own error is a pickle traceback
        raise TrainError(f"{file}: not readable as Paddle weights ({type(exc).__name__}: {exc})") from None


def apply_weights(model, state: dict, file: Path, say, strict: bool = False) -> None:
    """Load what fits. Tensors whose shapes differ (a classifier head for another class count) are
    skipped and named in one line; strict (eval, export, resume) makes any mismatch an error."""
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and list(v.shape) != list(own[k].shape)]
    missing = [k for k in own if k not in state]
    if strict and (mismatched or missing):
        raise TrainError(f"{file}: does not fit this model ({len(mismatched)} tensors of another shape, "
                         f"{len(missing)} missing, e.g. {(mismatched or missing)[0]}); check -o Arch.* "
                         "against the recipe it was trained with")
    model.set_state_dict({k: v for k, v in state.items() if k in own and k not in mismatched})
    loaded = sum(1 for k in state if k in own and k not in mismatched)
    note = "; skipped (shape differs): " + ", ".join(
        f"{k} {list(state[k].shape)}->{list(own[k].shape)}" for k in mismatched) if mismatched else ""
    gone = f"; {len(missing)} left at initialisation" if missing and not mismatched else ""
    say(f"weights from {file}: loaded {loaded} of {len(own)} tensors{note}{gone}")


class MetricsLog:
    """With --output: metrics.jsonl (one JSON object per logged step and evaluation) and the same
    scalars for VisualDL, the dashboard the suites write to, when it is installed."""

    def __init__(self, output: str | None, enabled: bool, started: float | None = None):
        self.file = self.vdl = None
        self.started = time.monotonic() if started is None else started
        if not (output and enabled):
            return
        Path(output).mkdir(parents=True, exist_ok=True)
        self.file = open(Path(output) / "metrics.jsonl", "a", encoding="utf-8")
        try:
            from visualdl import LogWriter
            self.vdl = LogWriter(logdir=str(Path(output) / "vdl"))
        except Exception:   # not installed in this image, or it cannot start: the JSON log stays
            self.vdl = None

    def write(self, event: str, step: int, values: dict) -> None:
        if self.file:
            elapsed = round(time.monotonic() - self.started, 3)   # seconds since the process started
            self.file.write(json.dumps({"event": event, "step": step, "time": elapsed, **values}) + "\n")
            self.file.flush()
        if self.vdl:
            for key, value in values.items():
                if isinstance(value, (int, float)) and key not in ("epoch",):
                    self.vdl.add_scalar(f"{event}/{key}", float(value), step)

    def close(self) -> None:
        for handle in (self.file, self.vdl):
            if handle:
                handle.close()


class Engine:
    """One run of one task: train, evaluate or export. `say` prints on rank 0 only."""

    def __init__(self, task, recipe: dict, options, world: parallel.World, device: str, say):
        """options: the run's options.RunOptions (what the command line and the image say; the recipe is the suite's)."""
        self.task, self.recipe, self.options, self.world, self.device, self.say = task, recipe, options, world, device, say
        self.model_name = options.model
        self.loader_cfg = recipe["DataLoader"]
        self.batch = int(self.loader_cfg["batch_size"])
        self.eval_batch = int(self.loader_cfg.get("eval_batch_size") or self.batch)
        self.epoch = 0
        self.stop_signal: int | None = None

    # --- input pipeline --------------------------------------------------------------------------
    def workers(self, dataset) -> int:
        """--workers, else the recipe's DataLoader.workers, else 'auto': half this rank's share of the
        CPUs (at least 1, at most 4) for data that needs decoding, none for synthetic data."""
        chosen = self.options.workers if self.options.workers is not None else self.loader_cfg.get("workers", "auto")
        cap = self.task.max_workers if self.task.max_workers is not None else 4
        if chosen != "auto":
            return min(int(chosen), cap)
        if self.task.data is None:
            return 0
        return max(0, min(cap, max(1, self.options.threads // 2)))

    def _worker_init(self, worker_id: int) -> None:
        # A stop signal is the trainer's to handle (finish the step, save): a loader worker that died
        # of it would fail the step in progress.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Each worker process starts from a copy of the parent's random state: give every worker,
        # rank and epoch its own stream, or the workers would draw the same crops and flips.
        seed = int(self.recipe["Global"].get("seed", 0)) + 7919 * self.epoch + 104729 * self.world.rank + worker_id
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)

    def loader(self, dataset, train: bool):
        workers = self.workers(dataset)
        decision = shm.decide(workers, self.task.batch_bytes(), shm.free_bytes())
        if decision.notice and not getattr(self, "_shm_said", False):
            self.say(decision.notice)
            self._shm_said = True
        if train:
            # Whole batches only (schedule.epoch_steps says why); the schedule counts the same steps.
            drop = schedule.drops_last(len(dataset), self.batch, self.world.size)
            sampler = ResumableSampler(dataset, self.batch, num_replicas=self.world.size, rank=self.world.rank,
                                       shuffle=True, drop_last=drop)
            if not drop:
                self.say(f"the training set ({len(dataset)} samples) is smaller than a batch of {self.batch}"
                         + (f" on each of {self.world.size} workers" if self.world.distributed else "")
                         + ": every step trains on all of it (--batch-size to choose)")
        else:
            sampler = ShardSampler(len(dataset), self.eval_batch, self.world)
        return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                    use_shared_memory=decision.use_shared_memory, collate_fn=self.task.collate_fn(),
                                    worker_init_fn=self._worker_init if workers else None)

    # --- model -----------------------------------------------------------------------------------
    def model(self, weights: str | None = None, strict: bool = False):
        paddle.seed(int(self.recipe["Global"].get("seed", 0)))   # the same initial weights on every rank
        if weights and Path(weights).is_dir():
            self.task.load_extra(Path(weights))   # what the weights need beside them (a vocabulary), before the build
        model = self.task.build_model()
        if weights:
            state, file = load_weights(weights)
            apply_weights(model, self.task.adapt_weights(model, state), file, self.say, strict=strict)
        return model

    # --- evaluation ------------------------------------------------------------------------------
    def evaluate(self, model, dataset, step: int, predictions: str | None = None) -> dict:
        started = time.perf_counter()
        metric, records = self.task.metric(), []
        model.eval()
        with paddle.no_grad():
            for batch in self._batches(self.loader(dataset, train=False)):
                outputs = self.task.evaluate_batch(model, batch)
                metric.update(outputs, batch)
                if predictions:
                    records += self.task.predictions(outputs, batch)
        model.train()
        result = metric.merge(parallel.gather(metric.state(), self.world))
        seconds = time.perf_counter() - started
        unit = self.task.eval_unit or self.task.unit.split("/")[0]
        self.say(f"eval step {step} | " + " | ".join(f"{k} {v:.4f}" for k, v in result.items())
                 + f" | {len(dataset)} {unit} | {seconds:.1f} s")
        if predictions:
            every = [r for part in parallel.gather(records, self.world) for r in part]
            if self.world.leader:
                Path(predictions).parent.mkdir(parents=True, exist_ok=True)
                Path(predictions).write_text("".join(json.dumps(r) + "\n" for r in sorted(every, key=lambda r: r["input"])))
                self.say(f"wrote {len(every)} predictions to {predictions}")
        return {**result, "samples": len(dataset), "seconds": round(seconds, 3)}

    def _batches(self, loader):
        """The loader's batches; a worker's TrainError (a corrupt image) ends the run with its own message.
        Leaving early (a stop signal, the last step) shuts the worker processes down at once: the
        iterator's own thread keeps it alive, and the workers ignore SIGTERM (see _worker_init), so
        they would otherwise outlive the step and hold the exit up."""
        # With worker processes, Paddle re-raises a worker's error in the loader's reader thread and
        # the loop only sees "Blocking queue is killed": keep what that thread raised, to report it.
        thread_errors: list[str] = []
        previous = threading.excepthook

        def keep(hook_args) -> None:
            thread_errors.append(str(hook_args.exc_value))
            if "TrainError" not in thread_errors[-1]:
                previous(hook_args)
        threading.excepthook = keep
        iterator = iter(loader)
        try:
            yield from iterator
        except TrainError:
            raise
        except Exception as exc:
            text = "\n".join([str(exc), *thread_errors]).strip().splitlines()
            found = next((line for line in reversed(text) if "TrainError" in line or ": cannot read" in line), None)
            if found:
                raise TrainError(found.split("TrainError: ", 1)[-1]) from None
            raise
        finally:
            threading.excepthook = previous
            shutdown = getattr(iterator, "_try_shutdown_all", None)   # paddle.io's multi-process iterator
            if shutdown:
                shutdown()

    # --- training --------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal is None:
            self.say(f"{signal.Signals(signum).name} received: stopping after the step in progress"
                     + (", then saving a checkpoint" if self.options.output else ""))
        self.stop_signal = signum

    def train(self, started: float) -> dict:
        """Train; SIGTERM or SIGINT (docker stop, preemption, Ctrl-C) ends the run after the step in
        progress, with a checkpoint when --output is set: --resume then continues at the next step."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._train(started)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _train(self, started: float) -> dict:
        options, world, task = self.options, self.world, self.task
        train_set, eval_set = task.datasets()
        global_batch = self.batch * world.size
        size = schedule.length(self.recipe, len(train_set), self.batch, run_epochs=options.epochs, ranks=world.size)
        plan = schedule.plan(self.recipe["Optimizer"]["lr"], size, global_batch)
        lr = scheduler(plan)
        model = self.model(options.pretrained)
        optim = optimizer(self.recipe["Optimizer"], lr, task.trainable(model))
        wrapped = parallel.wrap(model, world)
        total, per_epoch = size.run_steps, size.steps_per_epoch
        done, best = self._resume(model, optim, lr) if options.resume else (0, None)
        due = cadence.Cadence(total, self._eval_every(per_epoch, eval_set), options.save_every, options.save_minutes,
                              saving=bool(options.output), clock=task.eval_due if eval_set is not None and task.has_clock else None)
        self.say(f"training steps {done + 1}..{total} ({total / per_epoch:.3g} epochs of {per_epoch} steps) on "
                 f"{task.describe_data()}, batch {global_batch}" + (f" ({world.size} workers)" if world.distributed else ""))
        self.say(f"schedule: {plan.describe()}" + (f"; evaluation every {due.eval_every} steps" if due.eval_every else ""))
        log = StepLog(self.model_name, task.unit, self.device, started=started,
                      rank=None if world.leader else world.rank)
        metrics = MetricsLog(options.output, world.leader, started)
        loader = self.loader(train_set, train=True)
        step, last_eval, saved, stopped = done, None, None, False
        try:
            while step < total and not stopped and self.stop_signal is None:
                self.epoch = step // per_epoch
                loader.batch_sampler.set_epoch(self.epoch)
                loader.batch_sampler.skip = step % per_epoch
                tick = time.perf_counter()
                for batch in self._batches(loader):
                    rate = optim.get_lr()
                    loss = task.train_step(wrapped, batch, optim)
                    lr.step()
                    step += 1
                    # Every rank agrees on the loss and on stopping, so all stop after the same step.
                    value, stopped = parallel.agree(float(loss), self.stop_signal is not None, world)
                    seconds = time.perf_counter() - tick
                    samples = task.samples(batch) * world.size
                    log.step(step, total, value, seconds, samples, lr=rate, epoch=self.epoch + 1)
                    metrics.write("train", step, {"epoch": self.epoch + 1, "loss": value, "lr": rate,
                                                  "throughput": samples / seconds if seconds else None})
                    now = due.after(step, stopped)
                    if now.stop:
                        break
                    if now.evaluate:
                        last_eval, best = self._evaluate_and_keep_best(wrapped, model, optim, eval_set, step, best, metrics)
                    if now.save:
                        saved = self._save(model, optim, step, best)
                        due.saved()
                    tick = time.perf_counter()
            if due.at_end(step, done, stopped):
                last_eval, best = self._evaluate_and_keep_best(wrapped, model, optim, eval_set, step, best, metrics)
        finally:
            metrics.close()
        if options.output and step > done:
            saved = self._save(model, optim, step, best)
        if stopped or self.stop_signal is not None:
            signum = self.stop_signal or signal.SIGTERM
            self.say(f"stopped by {signal.Signals(signum).name} after step {step}"
                     + (f"; checkpoint {saved}: --resume continues at step {step + 1}" if saved else
                        " (no --output: nothing saved)"))
            self.stop_signal = signum
        if options.export and world.leader:
            self.export(model, Path(options.export), saved)
        summary = {"checkpoint": str(saved) if saved else None, "metric": last_eval, "best": best,
                   "schedule": plan.describe()}
        return log.summary(batch_size=global_batch, threads=options.threads, workers=world.size,
                           data=task.describe_data(), recipe=options.recipe, **summary,
                           stopped_by=signal.Signals(self.stop_signal).name if self.stop_signal else None,
                           paddle=paddle.__version__, machine=platform.machine(), peak_rss_mb=resources.peak_rss_mb(),
                           environment=check.stamp(paddle))

    def _evaluate_and_keep_best(self, wrapped, model, optim, eval_set, step: int, best, metrics):
        result = self.evaluate(wrapped, eval_set, step)
        metrics.write("eval", step, result)
        primary = self.task.primary
        if best is None or result[primary] > best["value"]:
            best = {"metric": primary, "value": result[primary], "step": step}
            self._save(model, optim, step, best, name="best")
        return result, best

    def _eval_every(self, per_epoch: int, eval_set) -> int:
        return cadence.eval_interval(self.options.eval_every, self.recipe["Global"], per_epoch, eval_set is not None,
                                     synthetic=self.task.data is None)

    # --- checkpoints -------------------------------------------------------------------------------
    def _resume(self, model, optim, lr) -> tuple[int, dict | None]:
        """(the step to continue after, the best so far) from the latest checkpoint in --output."""
        found = checkpoint.latest(self.options.output)
        if found is None:
            self.say(f"no checkpoint in {self.options.output}; starting from step 1")
            return 0, None
        done, directory = found
        state, file = load_weights(directory)
        apply_weights(model, state, file, lambda text: None, strict=True)
        saved = paddle.load(str(directory / "model.pdopt"))
        # The schedule is this run's (its length or batch may differ from the first run's): take the
        # optimizer's moments from the checkpoint, the rate from the plan at `done`.
        lr.step(done)
        saved["LR_Scheduler"] = lr.state_dict()
        optim.set_state_dict(saved)
        self.task.load_extra(directory)
        self.task.load_state(directory)
        self.say(f"resumed from {directory} (step {done})")
        return done, checkpoint.state(directory).get("best")

    def _save(self, model, optim, step: int, best: dict | None, name: str | None = None):
        output = self.options.output
        if not self.world.leader or not output:
            return None

        def write(directory: Path) -> None:
            paddle.save(model.state_dict(), str(directory / "model.pdparams"))
            if name is None:   # best/ is for evaluation and export: weights only
                paddle.save(optim.state_dict(), str(directory / "model.pdopt"))
                self.task.save_state(directory)
            self.task.save_extra(directory)
        state = {"model": self.model_name, "recipe_name": self.options.recipe, "recipe": self.recipe,
                 "workers": self.world.size, "best": best}
        if name:
            return checkpoint.save_as(output, name, write, {**state, "step": step})
        saved = checkpoint.save(output, step, write, state)
        checkpoint.prune(output, self.options.keep)
        return saved

    # --- evaluate / export without training ----------------------------------------------------------
    def evaluate_only(self, weights: str, predictions: str | None, started: float) -> dict:
        _, eval_set = self.task.datasets()
        if eval_set is None:
            raise TrainError(f"no validation split to evaluate on: {self.task.describe_data()} "
                             f"(expected {self.loader_cfg.get('val_list') or 'a validation file'} under --data)")
        model = parallel.wrap(self.model(weights, strict=True), self.world)
        result = self.evaluate(model, eval_set, 0, predictions)
        summary = {"event": "eval summary", "model": self.model_name, "weights": weights, "metric": result,
                   "device": self.device, "seconds": round(time.monotonic() - started, 3)}
        if self.world.leader:
            print(json.dumps(summary), flush=True)
        return summary

    def export(self, model, directory: Path, weights: str | Path | None = None) -> Path:
        """paddle.jit.save with the task's InputSpec (Paddle 3.x: inference.json + inference.pdiparams)
        and the pre/post-processing beside it (inference.yml); Global.trained says which checkpoint
        (its step, workers and best metric) when the weights came from one, for the serving image's labels."""
        directory.mkdir(parents=True, exist_ok=True)
        model.eval()
        paddle.jit.save(self.task.export_layer(model), str(directory / "inference"), input_spec=self.task.input_spec())
        self.task.save_extra(directory)   # what prediction needs beside the model (a vocabulary)
        config = {"Global": {"model": self.model_name, "task": self.options.task,
                             "paddle": paddle.__version__}, **self.task.inference_config()}
        if weights and (Path(weights) / "state.json").is_file():
            state = checkpoint.state(Path(weights))
            config["Global"]["trained"] = {"checkpoint": Path(weights).name, "step": state.get("step"),
                                           "workers": state.get("workers"), "best": state.get("best")}
        # JSON is YAML: PaddleClas's deploy tools and yaml.safe_load read it as their config.
        (directory / "inference.yml").write_text(json.dumps(config, indent=2) + "\n")
        self.say(f"exported an inference model to {directory} (inference.json, inference.pdiparams, inference.yml)")
        return directory
