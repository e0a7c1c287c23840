"""BERT and ERNIE the way PaddleNLP trains them.

Fine-tuning (with --data), as model_zoo/bert/run_glue.py and ERNIE's
examples/text_classification/pretrained_models/train.py do it: the suite's
BertForSequenceClassification / ErnieForSequenceClassification over its own tokenizer (BertTokenizer /
ErnieTokenizer, truncated to max_seq_len), batches padded to their longest sentence with
paddlenlp.data's Pad and Stack (run_glue.py's batchify_fn), cross-entropy, accuracy on the dev split
with paddle.metric.Accuracy (run_glue.py's metric for SST-2), AdamW with linear decay and warm-up
through the engine (LinearDecayWithWarmup's schedule: Optimizer.lr.name Linear + warmup_proportion).

Pretraining (without --data: the smoke default, and BERT's `pretrain` recipe): BertForPretraining /
ErnieForPretraining with the suite's criterion (masked-LM + next-sentence), on synthetic
`[CLS] A [SEP] B [SEP]` token ids masked as create_pretraining_data.py masks (15% of the tokens, at
most max_predictions a sequence: 80% [MASK], 10% a random token, 10% unchanged) with a random
is-next label. Its metric is masked-LM accuracy (and next-sentence accuracy).

Ours, because the PyPI wheel has none: the TSV / JSON-lines reader (paddlenlp's load_dataset
downloads; datasets/text.py), the vocabulary built from the training text when no --vocab is given
(nothing can be downloaded: special tokens, every character, then words by frequency; the suite's
tokenizer loads it), the synthetic pretraining data (run_pretrain.py reads hdf5 shards made by a
script the wheel does not ship), the masked-LM accuracy (the suite's pretraining logs only the loss).

Models are built from the suite's built-in configs (bert-base-uncased, ernie-1.0-base-zh), nothing
downloaded. Arch.num_hidden_layers / hidden_size / num_attention_heads / intermediate_size /
vocab_size override the config (null: as published), for a reduced-depth model. The vocabulary is
saved with every checkpoint and exported with the model; a mounted one (--vocab FILE) is used as is."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import paddle

from ...datasets import text as files
from ...errors import TrainError
from .. import synthetic
from ..contract import Metric, Task as BaseTask
from .inference import Inference

PAD, UNK, CLS, SEP, MASK = range(len(files.SPECIAL))   # the synthetic pretraining ids
ARCH_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")


class Family(NamedTuple):
    config: type
    pretraining: type
    classifier: type
    criterion: type
    tokenizer: type
    configs: dict


def family(name: str) -> Family:
    import paddlenlp.transformers as t   # imported here: it pulls in the suite
    if name == "bert":
        from paddlenlp.transformers.bert.configuration import BERT_PRETRAINED_INIT_CONFIGURATION as configs
        return Family(t.BertConfig, t.BertForPretraining, t.BertForSequenceClassification,
                      t.BertPretrainingCriterion, t.BertTokenizer, configs)
    if name == "ernie":
        from paddlenlp.transformers.ernie.configuration import ERNIE_PRETRAINED_INIT_CONFIGURATION as configs
        return Family(t.ErnieConfig, t.ErnieForPretraining, t.ErnieForSequenceClassification,
                      t.ErniePretrainingCriterion, t.ErnieTokenizer, configs)
    raise TrainError(f"Arch.name={name!r}: expected 'bert' or 'ernie'")


# --- datasets ------------------------------------------------------------------------------------

class Sentences(paddle.io.Dataset):
    """A labelled split, tokenized as it is read (in the DataLoader's workers) with the task's
    tokenizer; items are (input_ids, token_type_ids, label, index)."""

    def __init__(self, task: "Task", split: str):
        super().__init__()
        self.task, self.split = task, split

    def __len__(self) -> int:
        return len(self.task.split(self.split).examples)

    def __getitem__(self, index: int):
        example = self.task.split(self.split).examples[index]
        ids, types = self.task.encode(example.text)
        return ids, types, np.int64(example.label), np.int64(index)


class SyntheticPretraining(synthetic.Seeded):
    """Random `[CLS] A [SEP] B [SEP]` pairs, the same every run, masked as BERT's pretraining data
    is; items are (input_ids, token_type_ids, masked-LM labels with -1 where nothing is predicted,
    is-next label, index)."""

    def __init__(self, count: int, seq_len: int, vocab_size: int, mask_prob: float, max_predictions: int, seed: int):
        super().__init__(count, seed)
        self.seq_len, self.vocab_size = seq_len, vocab_size
        self.mask_prob, self.max_predictions = mask_prob, max_predictions

    def make(self, rng, index: int):
        n, low = self.seq_len, len(files.SPECIAL)
        ids = rng.integers(low, self.vocab_size, n, dtype="int64")
        first = (n - 3) // 2
        ids[0], ids[first + 1], ids[n - 1] = CLS, SEP, SEP
        types = np.zeros(n, dtype="int64")
        types[first + 2:] = 1
        candidates = np.setdiff1d(np.arange(n), [0, first + 1, n - 1])
        # create_pretraining_data.py: min(max_predictions_per_seq, max(1, round(len(tokens) x masked_lm_prob)))
        count = min(self.max_predictions, max(1, int(round(len(candidates) * self.mask_prob))))
        chosen = np.sort(rng.choice(candidates, count, replace=False))
        labels = np.full(n, -1, dtype="int64")
        labels[chosen] = ids[chosen]
        roll = rng.random(count)
        ids[chosen] = np.where(roll < 0.8, MASK, np.where(roll < 0.9, rng.integers(low, self.vocab_size, count), ids[chosen]))
        return ids, types, labels, np.array([rng.integers(0, 2)], dtype="int64"), np.int64(index)


# --- metrics ---------------------------------------------------------------------------------------

class Accuracy(Metric):
    """paddle.metric.Accuracy over the dev split (run_glue.py's SST-2 metric); (correct, count) merge across ranks."""

    def __init__(self):
        self.accuracy = paddle.metric.Accuracy()

    def update(self, outputs, batch) -> None:
        self.accuracy.update(self.accuracy.compute(outputs, batch[2].reshape([-1, 1])))

    def state(self):
        return float(self.accuracy.total[0]), float(self.accuracy.count[0])

    def merge(self, states: list) -> dict[str, float]:
        correct, count = sum(s[0] for s in states), sum(s[1] for s in states)
        return {"accuracy": correct / count if count else 0.0}


class MaskedLMAccuracy(Metric):
    """Masked tokens predicted right / masked tokens, and the same for the next-sentence labels."""

    def __init__(self):
        self.counts = np.zeros(4)   # masked-LM correct, masked tokens, next-sentence correct, sequences

    def update(self, outputs, batch) -> None:
        scores, nsp_scores, targets, nsp = outputs
        self.counts += [int((scores.argmax(axis=-1) == targets.reshape([-1])).sum()), targets.shape[0],
                        int((nsp_scores.argmax(axis=-1) == nsp.reshape([-1])).sum()), nsp.shape[0]]

    def state(self):
        return self.counts.tolist()

    def merge(self, states: list) -> dict[str, float]:
        c = np.sum(np.array(states, dtype="float64"), axis=0)
        return {"mlm_accuracy": c[0] / c[1] if c[1] else 0.0, "nsp_accuracy": c[2] / c[3] if c[3] else 0.0}


# --- the task --------------------------------------------------------------------------------------

class Task(BaseTask):
    unit = "sequences/s"
    input_suffixes = (".txt", ".tsv", ".jsonl", ".json")   # what `predict DIR` reads: sentence files

    def __init__(self, recipe: dict, data: str | None, world, options):
        super().__init__(recipe, data, world, options)
        g, arch, loader = recipe["Global"], recipe["Arch"], recipe["DataLoader"]
        self.seq_len = int(loader["max_seq_len"])
        pre = recipe.get("Pretrain", {})
        self.mask_prob, self.max_predictions = float(pre.get("mask_prob", 0.15)), int(pre.get("max_predictions") or 20)
        self.classes = int(arch.get("num_classes", 2))
        if self.seq_len < 8:
            raise TrainError(f"DataLoader.max_seq_len={self.seq_len}: use at least 8")
        if not 0 < self.mask_prob < 1:
            raise TrainError(f"Pretrain.mask_prob={self.mask_prob}: expected a fraction between 0 and 1 (BERT: 0.15)")
        if self.max_predictions < 1:
            raise TrainError(f"Pretrain.max_predictions={self.max_predictions}: expected at least 1 (BERT: 20)")
        if self.classes < 2:
            raise TrainError(f"Arch.num_classes={self.classes}: a classifier needs at least 2 classes")
        tokenizer = recipe.get("Tokenizer", {})
        self.do_lower_case = bool(tokenizer.get("do_lower_case", True))
        self.vocab_file = self._find(tokenizer["vocab_file"]) if tokenizer.get("vocab_file") else None
        pretraining = g.get("objective") == "pretraining"
        if data and pretraining:
            raise TrainError(f"--recipe {options.recipe} pretrains (masked-LM + next-sentence) "
                             "on synthetic token ids: PaddleNLP's pretraining reads hdf5 shards, which this image does "
                             "not; leave out --data, or fine-tune on it with the default recipe")
        # Fine-tuning with data, or exporting a classifier (--vocab, or a checkpoint with labels: load_extra).
        self.mode = "finetune" if data or (self.vocab_file and not pretraining) else "pretrain"
        self.train_data = self.dev_data = None
        self.label_names = [str(i) for i in range(self.classes)]
        if data:   # parse the files now: a bad line fails before the suite is imported
            self.train_data = files.text_classification(data, loader.get("train_file", "auto"), self.classes)
            self.dev_data = files.validation_split(data, loader.get("dev_file", "auto"), self.train_data)
            self.label_names = self.train_data.label_names
        tokens = files.read_vocab(self.vocab_file) if self.vocab_file else None
        self.family = family(arch["name"])
        if arch["config"] not in self.family.configs:
            raise TrainError(f"Arch.config={arch['config']!r}: expected one of {', '.join(sorted(self.family.configs))}")
        self.config = self._config(arch)
        self.vocab_size = int(self.config["vocab_size"])
        self.vocab, self.tokenizer, self.vocab_source, self._built_pad, self._synthetic = None, None, None, None, False
        self._dir = None
        if self.mode == "finetune":
            if tokens is None and self.train_data is not None:
                # The tokenizer's own pre-tokenizer (lower-casing, punctuation and CJK characters split)
                # over the whole file, so every rank builds the same vocabulary.
                from paddlenlp.transformers.bert.tokenizer import BasicTokenizer
                tokens = files.build_vocab([e.text for e in self.train_data.examples],
                                           BasicTokenizer(do_lower_case=self.do_lower_case).tokenize, self.vocab_size)
                self._set_vocab(tokens, "built from the training text")
            elif tokens is not None:
                self._set_vocab(tokens, str(self.vocab_file))

    def _find(self, given: str) -> Path:
        """--vocab as given, else under --data (so `--vocab vocab.txt` finds /data/vocab.txt)."""
        path = Path(given)
        if not path.is_absolute() and not path.exists() and self.data and (Path(self.data) / path).exists():
            return Path(self.data) / path
        return path

    def _config(self, arch: dict) -> dict:
        config = dict(self.family.configs[arch["config"]])
        for key in ARCH_KEYS:
            if arch.get(key) is not None:
                value = arch[key]
                if not isinstance(value, int) or value < 1:
                    raise TrainError(f"Arch.{key}={value!r}: expected a positive integer (null: {arch['config']}'s "
                                     f"{config.get(key)})")
                config[key] = value
        if config["hidden_size"] % config["num_attention_heads"]:
            raise TrainError(f"Arch.hidden_size={config['hidden_size']} must be a multiple of "
                             f"Arch.num_attention_heads={config['num_attention_heads']}")
        if self.seq_len > config["max_position_embeddings"]:
            raise TrainError(f"DataLoader.max_seq_len={self.seq_len}: {arch['config']} has "
                             f"{config['max_position_embeddings']} positions")
        return config

    # --- vocabulary and labels ------------------------------------------------------------------
    def _set_vocab(self, tokens: list[str], source: str) -> None:
        if len(tokens) > self.vocab_size:
            raise TrainError(f"vocabulary {source}: {len(tokens)} tokens, but the model embeds {self.vocab_size} "
                             f"(Arch.vocab_size); use the vocabulary of the weights, or -o Arch.vocab_size={len(tokens)} "
                             "when training from scratch")
        pad = tokens.index("[PAD]")
        if self._built_pad is not None and pad != self._built_pad:
            raise TrainError(f"vocabulary {source}: [PAD] is id {pad}, the model was built with {self._built_pad}")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="kunlun-vocab-"))
            atexit.register(shutil.rmtree, self._dir, True)
        path = self._dir / "vocab.txt"
        path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        self.vocab, self.vocab_source, self.pad_id = tokens, source, pad
        self.tokenizer = self.family.tokenizer(vocab_file=str(path), do_lower_case=self.do_lower_case)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer(text, max_length=self.seq_len, truncation=True)
        return np.array(enc["input_ids"], dtype="int64"), np.array(enc["token_type_ids"], dtype="int64")

    def split(self, name: str) -> files.TextDataset:
        return self.train_data if name == "train" else self.dev_data

    def _use_labels(self, names: list[str]) -> None:
        """A checkpoint's label names: class i is what it called i. The data's labels are renumbered
        to them when they are among them (eval, resume); data with other labels keeps its own (a
        --pretrained classifier for another task: its head is skipped)."""
        if self.train_data is None:
            self.label_names = names
            return
        used = {self.train_data.label_names[e.label] for e in self.train_data.examples}
        if self.dev_data:
            used |= {self.dev_data.label_names[e.label] for e in self.dev_data.examples}
        if len(names) == self.classes and used <= set(names):
            self.train_data = files.relabel(self.train_data, names)
            self.dev_data = files.relabel(self.dev_data, names) if self.dev_data else None
            self.label_names = names

    # --- data ------------------------------------------------------------------------------------
    def datasets(self):
        if self.mode == "pretrain":
            self._synthetic = True
            seed = int(self.recipe["Global"].get("seed", 0))
            count = int(self.recipe["Global"].get("synthetic_samples", 64))
            make = lambda n, s: SyntheticPretraining(n, self.seq_len, self.vocab_size, self.mask_prob,  # noqa: E731
                                                     self.max_predictions, s)
            return make(count, seed), make(max(1, count // 4), seed + 1)
        if self.train_data is None:
            raise TrainError("fine-tuning needs --data DIR with train.tsv (and dev.tsv)")
        return Sentences(self, "train"), (Sentences(self, "dev") if self.dev_data else None)

    def describe_data(self) -> str:
        if self.mode == "pretrain" or self.train_data is None:
            return "synthetic"
        d = self.train_data
        vocab = f"vocab {len(self.vocab)}" + ("" if self.vocab_source.startswith("built") else f" from {self.vocab_source}")
        dev = f", {len(self.dev_data.examples)} for validation ({self.dev_data.path.name})" if self.dev_data else ""
        return f"{len(d.examples)} sentences from {d.path.name} ({d.kind}, {len(d.label_names)} classes, {vocab}){dev}"

    def collate_fn(self):
        if self.mode == "pretrain":
            return None   # fixed-length synthetic sequences: Paddle's default stacking
        from paddlenlp.data import Pad, Stack, Tuple   # run_glue.py's batchify_fn
        return Tuple(Pad(axis=0, pad_val=self.pad_id, dtype="int64"),
                     Pad(axis=0, pad_val=self.tokenizer.pad_token_type_id, dtype="int64"),
                     Stack(dtype="int64"), Stack(dtype="int64"))

    def batch_bytes(self) -> int:
        return int(self.recipe["DataLoader"]["batch_size"]) * self.seq_len * 8 * 3

    # --- model ---------------------------------------------------------------------------------
    @property
    def primary(self) -> str:
        return "accuracy" if self.mode == "finetune" else "mlm_accuracy"

    def build_model(self):
        values = dict(self.config)
        if self.mode == "finetune":
            if self.vocab is None:
                raise TrainError("no vocabulary for the classifier: give --vocab FILE (the weights' vocab.txt) "
                                 "or --data DIR to build one from")
            values["pad_token_id"] = self._built_pad = self.pad_id   # the attention mask hides this id
            return self.family.classifier(self.family.config(**values, num_labels=self.classes))
        model = self.family.pretraining(self.family.config(**values))
        self.criterion = (self.family.criterion(self.vocab_size) if self.recipe["Arch"]["name"] == "bert"
                          else self.family.criterion())
        return model

    def _pretraining_outputs(self, model, batch):
        ids, types, labels, nsp = batch[:4]
        flat = labels.reshape([-1])
        positions = paddle.nonzero(flat >= 0).reshape([-1])   # the masked tokens, over the whole batch
        targets = paddle.gather(flat, positions).reshape([-1, 1])
        scores, nsp_scores = model(ids, token_type_ids=types, masked_positions=positions)[:2]
        return scores, nsp_scores, targets, nsp

    def _logits(self, model, batch):
        out = model(batch[0], token_type_ids=batch[1])
        return out[0] if isinstance(out, (tuple, list)) else out

    def loss(self, model, batch):
        if self.mode == "finetune":
            return paddle.nn.functional.cross_entropy(self._logits(model, batch), batch[2].reshape([-1, 1]))
        scores, nsp_scores, targets, nsp = self._pretraining_outputs(model, batch)
        if self.recipe["Arch"]["name"] == "bert":   # masked-LM loss summed and scaled by the masked count, + NSP
            return self.criterion(scores, nsp_scores, targets, nsp, float(targets.shape[0]))
        mlm, nsp_loss = self.criterion(scores, nsp_scores, targets, nsp)   # ERNIE: (masked-LM, next-sentence)
        return mlm + nsp_loss

    # --- evaluation ----------------------------------------------------------------------------
    def metric(self) -> Metric:
        return Accuracy() if self.mode == "finetune" else MaskedLMAccuracy()

    def evaluate_batch(self, model, batch):
        return self._logits(model, batch) if self.mode == "finetune" else self._pretraining_outputs(model, batch)

    def predictions(self, outputs, batch) -> list[dict]:
        if self.mode != "finetune":
            return []
        probs = paddle.nn.functional.softmax(outputs, axis=-1).numpy()
        out = []
        for row, label, index in zip(probs, batch[2].numpy(), batch[3].numpy()):
            path, line = self.dev_data.examples[int(index)].where.rsplit(":", 1)
            order = np.argsort(-row, kind="stable")
            out.append({"input": f"{os.path.relpath(path, self.data)}:{line}", "label": int(label),
                        "class_ids": [int(i) for i in order], "scores": [round(float(row[i]), 6) for i in order]})
        return out

    # --- export and prediction --------------------------------------------------------------------
    def input_spec(self) -> list:
        return [paddle.static.InputSpec([None, None], "int64", "input_ids"),
                paddle.static.InputSpec([None, None], "int64", "token_type_ids")]

    def export_layer(self, model):
        if self.mode != "finetune":
            raise TrainError("export writes a sentence classifier, and these weights are a pretraining (masked-LM) "
                             "model: fine-tune them with --data DIR --pretrained WEIGHTS first")
        return WithSoftmax(model)

    def inference_config(self) -> dict:
        """The tokenizer and its vocabulary (vocab.txt beside the model), and the label names."""
        return {"PreProcess": {"tokenizer": self.family.tokenizer.__name__, "vocab_file": "vocab.txt",
                               "do_lower_case": self.do_lower_case, "max_seq_len": self.seq_len,
                               "pad_token_id": self.pad_id, "inputs": ["input_ids", "token_type_ids"]},
                "PostProcess": {"main_indicator": "Topk", "Topk": {"topk": 1}, "softmax": True,
                                "label_names": self.label_names}}

    def predict(self, predictor, config: dict, inputs: list, labels: dict | None, args):
        """Each sentence of each file (TSV or JSON lines as for training, or one sentence a line):
        the exported tokenizer, the model, the top-k classes (Inference)."""
        given = getattr(args, "vocab", None)
        vocab = self._find(given) if given else Path(args.model) / config["PreProcess"]["vocab_file"]
        inference = Inference(config, vocab, "--vocab" if given else "--model", labels, args.topk, args.model)
        for path in inputs:
            found = files.sentences(Path(path))
            if not found:
                raise TrainError(f"--input {path}: no sentences in it")
            for line, text in found:
                prepared = inference.preprocess(text, f"--input {path}:{line}")
                result, shown = inference.postprocess(
                    predictor.named({n: prepared[n] for n in inference.input_names}), prepared)
                yield f"{path}:{line}", result, shown

    @staticmethod
    def inference(config: dict, directory: Path | None = None, labels: dict | None = None) -> "Inference":
        """The predict route's pipeline for the export in `directory` (its vocabulary is beside it)."""
        directory = Path(directory or ".")
        return Inference(config, directory / config["PreProcess"]["vocab_file"], "--model", labels,
                         model=str(directory))

    # --- checkpoints ------------------------------------------------------------------------------
    def save_extra(self, directory) -> None:
        """A classifier's vocabulary and label names, beside its weights (checkpoints and export)."""
        if self.mode != "finetune":
            return
        (Path(directory) / "vocab.txt").write_text("\n".join(self.vocab) + "\n", encoding="utf-8")
        (Path(directory) / "labels.json").write_text(json.dumps(self.label_names, ensure_ascii=False) + "\n",
                                                     encoding="utf-8")

    def load_extra(self, directory) -> None:
        """Tokenize as the checkpoint was trained (its vocab.txt), and number the classes as it did."""
        directory = Path(directory)
        labels, vocab = directory / "labels.json", directory / "vocab.txt"
        if labels.is_file():
            if self.mode == "pretrain":
                if self._synthetic:
                    raise TrainError(f"{directory}: a fine-tuned classifier; evaluate it on its dataset (--data DIR "
                                     "with dev.tsv)")
                self.mode = "finetune"   # export of a fine-tuned checkpoint
            self._use_labels(json.loads(labels.read_text(encoding="utf-8")))
        if vocab.is_file() and self.mode == "finetune":
            tokens = files.read_vocab(vocab, "checkpoint")
            if self.vocab_file and tokens != self.vocab:
                raise TrainError(f"--vocab {self.vocab_file}: {directory} was trained with another vocabulary (its "
                                 "vocab.txt); leave --vocab out to use that one")
            if tokens != self.vocab:
                self._set_vocab(tokens, str(vocab))


class WithSoftmax(paddle.nn.Layer):
    """The classifier plus a softmax: class probabilities out, as PaddleNLP's deploy scripts compute them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids):
        out = self.model(input_ids, token_type_ids=token_type_ids)
        return paddle.nn.functional.softmax(out[0] if isinstance(out, (tuple, list)) else out, axis=-1)

