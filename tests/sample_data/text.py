"""Tiny text-classification datasets in the formats `--data` accepts for BERT / ERNIE: GLUE SST-2
style train.tsv (header `sentence<TAB>label`) and JSON lines train.jsonl (`{"text", "label"}`)."""
from __future__ import annotations

import json
from pathlib import Path

# (sentence, label): SST-2's lower-cased, space-tokenised style; 1 = positive. One Chinese line, as
# ERNIE's data would have (the vocabulary builder splits CJK text into characters).
SENTENCES = [
    ("a gripping , funny and touching film .", 1),
    ("the plot is thin and the jokes fall flat .", 0),
    ("one of the most beautiful movies of the year .", 1),
    ("a tedious , overlong mess .", 0),
    ("这部电影非常好看 , 演员的表演很精彩 。", 1),
    ("dull characters and a predictable ending .", 0),
]


def write_tsv(path: Path, rows=SENTENCES) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows=SENTENCES) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n"
                            for text, label in rows), encoding="utf-8")
    return path


def write(root: Path, kind: str = "tsv") -> Path:
    """A dataset directory with train.tsv (kind 'tsv') or train.jsonl (kind 'jsonl')."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "tsv":
        write_tsv(root / "train.tsv")
    else:
        write_jsonl(root / "train.jsonl")
    return root
