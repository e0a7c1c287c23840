"""PaddleNLP's tokenizer and the top-k classes around an exported classifier, for `predict`
(adapter.py) and the server's predict route (serving/routes.py). The suite is imported when an
Inference is built, never at module level."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...datasets import text as files
from ...errors import TrainError


class Inference:
    """The exported tokenizer (BertTokenizer / ErnieTokenizer on the export's vocab.txt, truncated to
    max_seq_len), the model's class probabilities, the top-k classes with their label names.
    `predict` (each sentence of its files) and the server's predict route (a sentence a request)
    both run this."""

    input_name = "input_ids"
    input_names = ("input_ids", "token_type_ids")
    body = "text"

    def __init__(self, config: dict, vocab: Path, flag: str = "--model", labels: dict | None = None,
                 topk: int | None = None, model: str | None = None):
        import paddlenlp.transformers as t
        pre, post = config["PreProcess"], config["PostProcess"]
        files.read_vocab(vocab, flag)
        if pre.get("tokenizer") not in ("BertTokenizer", "ErnieTokenizer"):
            raise TrainError(f"--model {model}: inference.yml names the tokenizer {pre.get('tokenizer')!r}; "
                             "expected BertTokenizer or ErnieTokenizer")
        self.tokenizer = getattr(t, pre["tokenizer"])(vocab_file=str(vocab), do_lower_case=pre.get("do_lower_case", True))
        self.max_len = int(pre["max_seq_len"])
        classes = len(post["label_names"])
        self.names = labels or dict(enumerate(post["label_names"]))
        self.k = max(1, min(topk or post["Topk"]["topk"], classes))

    def preprocess(self, text: str, what: str) -> dict:
        if not isinstance(text, str) or not text.strip():
            raise TrainError(f"{what}: no text (expected a sentence)")
        if "\n" in text or "\r" in text:   # a body sent from a file ends in its line break
            text = text.strip("\r\n")
        if "\n" in text:
            raise TrainError(f"{what}: one sentence a request (the text has several lines)")
        enc = self.tokenizer(text, max_length=self.max_len, truncation=True)
        return {"input_ids": np.array([enc["input_ids"]], dtype="int64"),
                "token_type_ids": np.array([enc["token_type_ids"]], dtype="int64"), "text": text}

    def postprocess(self, outputs: dict, prepared: dict) -> tuple[dict, str]:
        row = next(iter(outputs.values()))[0]
        text = prepared["text"]
        order = [int(i) for i in np.argsort(-row, kind="stable")[:self.k]]
        result = {"text": text, "class_ids": order, "scores": [round(float(row[i]), 6) for i in order],
                  "label_names": [self.names.get(i, "") for i in order]}
        shown = " | ".join(f"{c}{f' {n}' if n and n != str(c) else ''} {row[c]:.4f}"
                           for c, n in zip(order, result["label_names"]))
        return result, f"{shown} | {text if len(text) <= 60 else text[:57] + '...'}"

    def example(self, rows: int) -> dict[str, np.ndarray]:
        return {"input_ids": np.zeros((rows, self.max_len), "int64"),
                "token_type_ids": np.zeros((rows, self.max_len), "int64")}
