"""BERT and ERNIE from PaddleNLP (`paddlenlp.transformers`), base size, random init.

Synthetic data (the default): masked-LM + next-sentence pretraining, as the models were trained, on
random token ids: `[CLS] A [SEP] B [SEP]` with 15% of the tokens masked (80% [MASK], 10% a random
token, 10% unchanged) and a random is-next label. With `--data DIR`: text classification
fine-tuning (SST-2 TSV or JSON lines, datasets/text.py) with a sequence-classification head.

No vocabulary can be downloaded, so with `--data` one is built from the training text at start-up
(the special tokens, every character as a word start and as a `##` continuation, then the most
frequent words), written as a vocab.txt that the suite's own tokenizer loads, and saved with every
checkpoint; `--resume` tokenizes with the checkpoint's vocabulary. The embedding table keeps the
real config's size (30522 for bert-base-uncased, 18000 for ernie-1.0-base-zh): ids past the built
vocabulary are simply unused.

Throughput is counted in sequences/s: every pretraining sequence is padded to the same length, and
cli.py prints `samples_per_step()` as the batch size (tokens/s = sequences/s x max_seq_len)."""
from __future__ import annotations

import atexit
import collections
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import paddle

from .. import parallel
from ..datasets import text as datasets
from ..errors import TrainError

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]   # ids 0..4; pad id 0 as both configs say
PAD, UNK, CLS, SEP, MASK = range(len(SPECIAL))


def family(name: str):
    """(config class, pretraining model, classifier, criterion, tokenizer, named configs) of a model family."""
    import paddlenlp.transformers as t   # imported here: it pulls in the suite
    if name == "bert":
        from paddlenlp.transformers.bert.configuration import BERT_PRETRAINED_INIT_CONFIGURATION as configs
        return (t.BertConfig, t.BertForPretraining, t.BertForSequenceClassification,
                t.BertPretrainingCriterion, t.BertTokenizer, configs)
    if name == "ernie":
        from paddlenlp.transformers.ernie.configuration import ERNIE_PRETRAINED_INIT_CONFIGURATION as configs
        return (t.ErnieConfig, t.ErnieForPretraining, t.ErnieForSequenceClassification,
                t.ErniePretrainingCriterion, t.ErnieTokenizer, configs)
    raise TrainError(f"Arch.name={name!r}: expected 'bert' or 'ernie'")


def build_vocab(texts: list[str], basic_tokenize, size: int) -> list[str]:
    """Special tokens, then every character (as a word and as a `##` continuation, so WordPiece can
    spell any word of the text), then whole words by frequency; at most `size` entries."""
    words = collections.Counter(w for text in texts for w in basic_tokenize(text))
    chars = sorted({c for w in words for c in w})
    vocab, seen = [], set()
    for token in [*SPECIAL, *chars, *(f"##{c}" for c in chars),
                  *(w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])))]:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab[:size]


class Trainer:
    unit = "sequences/s"

    def __init__(self, recipe: dict, data: str | None, world: parallel.World = parallel.World()):
        g, arch, loader = recipe["Global"], recipe["Arch"], recipe["DataLoader"]
        self.batch, self.seq_len = int(loader["batch_size"]), int(loader["max_seq_len"])
        self.mask_prob = float(recipe.get("Pretrain", {}).get("mask_prob", 0.15))
        self.classes = int(arch.get("num_classes", 2))
        if self.seq_len < 8:
            raise TrainError(f"DataLoader.max_seq_len={self.seq_len}: use at least 8")
        if not 0 < self.mask_prob < 1:
            raise TrainError(f"Pretrain.mask_prob={self.mask_prob}: expected a fraction between 0 and 1 (BERT: 0.15)")
        seed = int(g.get("seed", 0))
        self.rng = np.random.default_rng(world.seed(seed))
        # Dataset problems first, before the suite's slow import.
        self.dataset = None
        if data:
            self.dataset = datasets.text_classification(data, loader.get("train_file", "auto"), self.classes)
            self.examples = world.shard(self.dataset.examples)
        config_cls, pretraining, classifier, criterion, self._tokenizer_cls, configs = family(arch["name"])
        if arch["config"] not in configs:
            raise TrainError(f"Arch.config={arch['config']!r}: expected one of {', '.join(sorted(configs))}")
        config = config_cls(**configs[arch["config"]], num_labels=self.classes)
        if self.seq_len > config.max_position_embeddings:
            raise TrainError(f"DataLoader.max_seq_len={self.seq_len}: {arch['config']} has "
                             f"{config.max_position_embeddings} positions")
        self.vocab_size = int(config.vocab_size)
        paddle.seed(seed)   # the same initial weights on every rank
        self.family = arch["name"]
        if self.dataset is None:
            model = pretraining(config)
            self.criterion = criterion(self.vocab_size) if self.family == "bert" else criterion()
        else:
            model, self.criterion = classifier(config), None
            self._vocab_dir = Path(tempfile.mkdtemp(prefix="kunlun-vocab-"))
            atexit.register(shutil.rmtree, self._vocab_dir, True)
            # The tokenizer's own pre-tokenizer (lower-casing, punctuation and CJK characters split),
            # over the whole file, so every rank builds the same vocabulary.
            from paddlenlp.transformers.bert.tokenizer import BasicTokenizer
            self._use_vocab(build_vocab([e.text for e in self.dataset.examples],
                                        BasicTokenizer(do_lower_case=True).tokenize, self.vocab_size))
        self.model = parallel.wrap(model, world)
        opt = recipe["Optimizer"]
        if opt.get("name", "AdamW") != "AdamW":
            raise TrainError(f"Optimizer.name={opt['name']!r}: only AdamW is supported")
        no_decay = {p.name for n, p in model.named_parameters() if n.endswith("bias") or "norm" in n}
        self.optimizer = paddle.optimizer.AdamW(
            learning_rate=float(opt["learning_rate"]), parameters=self.model.parameters(),
            weight_decay=float(opt.get("weight_decay", 0.0)), apply_decay_param_fun=lambda n: n not in no_decay)
        self._order: list[int] = []
        self._last = self.batch

    # --- vocabulary -------------------------------------------------------------------------

    def _use_vocab(self, vocab: list[str]) -> None:
        path = self._vocab_dir / "vocab.txt"
        path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        self.vocab = vocab
        self.tokenizer = self._tokenizer_cls(vocab_file=str(path), do_lower_case=True)

    def describe_data(self) -> str:
        if self.dataset is None:
            return "synthetic"
        return (f"{len(self.dataset.examples)} sentences from {self.dataset.path.name} ({self.dataset.kind}, "
                f"{len(self.dataset.label_names)} classes, vocab {len(self.vocab)})")

    # --- batches -----------------------------------------------------------------------------

    def pretraining_batch(self) -> dict:
        """Random `[CLS] A [SEP] B [SEP]` pairs, masked as BERT's pretraining data is."""
        b, n = self.batch, self.seq_len
        ids = self.rng.integers(len(SPECIAL), self.vocab_size, (b, n), dtype="int64")
        first = (n - 3) // 2
        ids[:, 0], ids[:, first + 1], ids[:, n - 1] = CLS, SEP, SEP
        types = np.zeros((b, n), dtype="int64")
        types[:, first + 2:] = 1
        maskable = np.ones((b, n), dtype=bool)
        maskable[:, [0, first + 1, n - 1]] = False
        chosen = maskable & (self.rng.random((b, n)) < self.mask_prob)
        for row in range(b):   # at least one prediction per sequence
            if not chosen[row].any():
                chosen[row, self.rng.choice(np.flatnonzero(maskable[row]))] = True
        labels = ids[chosen].copy()
        roll = self.rng.random(labels.shape)
        replaced = np.where(roll < 0.8, MASK, np.where(roll < 0.9, self.rng.integers(
            len(SPECIAL), self.vocab_size, labels.shape), labels))
        ids[chosen] = replaced
        return {"input_ids": ids, "token_type_ids": types,
                "masked_positions": np.flatnonzero(chosen.reshape(-1)).astype("int64"),
                "masked_lm_labels": labels.reshape(-1, 1).astype("int64"),
                "next_sentence_labels": self.rng.integers(0, 2, (b, 1), dtype="int64")}

    def classification_batch(self) -> dict:
        picked = []
        for _ in range(self.batch):
            if not self._order:   # a new epoch: reshuffle
                self._order = list(self.rng.permutation(len(self.examples)))
            picked.append(self.examples[self._order.pop()])
        enc = self.tokenizer([e.text for e in picked], max_length=self.seq_len, truncation=True,
                             padding="longest", return_attention_mask=False)
        return {"input_ids": np.array(enc["input_ids"], dtype="int64"),
                "token_type_ids": np.array(enc["token_type_ids"], dtype="int64"),
                "labels": np.array([[e.label] for e in picked], dtype="int64")}

    def samples_per_step(self) -> int:
        return self._last

    # --- training ----------------------------------------------------------------------------

    def step(self) -> float:
        self.model.train()
        if self.dataset is None:
            batch = {k: paddle.to_tensor(v) for k, v in self.pretraining_batch().items()}
            scores, nsp = self.model(batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                     masked_positions=batch["masked_positions"])[:2]
            if self.family == "bert":   # the masked-LM loss summed and scaled, plus the next-sentence loss
                scale = paddle.to_tensor(float(batch["masked_lm_labels"].shape[0]))
                loss = self.criterion(scores, nsp, batch["masked_lm_labels"], batch["next_sentence_labels"], scale)
            else:   # ERNIE: (masked-LM loss, next-sentence loss)
                mlm, nsp_loss = self.criterion(scores, nsp, batch["masked_lm_labels"], batch["next_sentence_labels"])
                loss = mlm + nsp_loss
        else:
            batch = {k: paddle.to_tensor(v) for k, v in self.classification_batch().items()}
            logits = self.model(batch["input_ids"], token_type_ids=batch["token_type_ids"])
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            loss = paddle.nn.functional.cross_entropy(logits, batch["labels"])
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        self._last = int(batch["input_ids"].shape[0])
        return float(loss)

    def save(self, directory) -> None:
        paddle.save(self.model.state_dict(), str(directory / "model.pdparams"))
        paddle.save(self.optimizer.state_dict(), str(directory / "model.pdopt"))
        if self.dataset is not None:
            shutil.copy(self._vocab_dir / "vocab.txt", directory / "vocab.txt")
            (directory / "labels.json").write_text(json.dumps(self.dataset.label_names) + "\n", encoding="utf-8")

    def load(self, directory) -> None:
        vocab = directory / "vocab.txt"
        if self.dataset is not None and vocab.is_file():   # tokenize as the run that saved it did
            saved = vocab.read_text(encoding="utf-8").splitlines()
            if saved != self.vocab:
                self._use_vocab(saved)
        self.model.set_state_dict(paddle.load(str(directory / "model.pdparams")))
        self.optimizer.set_state_dict(paddle.load(str(directory / "model.pdopt")))
