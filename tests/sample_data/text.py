"""Tiny text-classification datasets in the formats `--data` accepts for BERT / ERNIE: GLUE SST-2
style train.tsv (header `sentence<TAB>label`) and JSON lines train.jsonl (`{"text", "label"}`), and a
learnable set where a keyword decides the label. Standard library only."""
from __future__ import annotations

import json
import random
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


# A learnable set: each sentence is neutral filler words plus ONE keyword, and the keyword alone decides
# the label (1 = a positive keyword). Balanced classes, so chance is 0.5.
POSITIVE = ["great", "superb", "wonderful", "brilliant", "delightful"]
NEGATIVE = ["awful", "dull", "terrible", "boring", "dreadful"]
FILLER = ("the film story actor scene plot music movie camera city night day house friend old new long short "
          "red blue walk talk run look and with of in a this that some every quite rather its their about over "
          "under through between").split()
LABEL_NAMES = ["negative", "positive"]


def keyword_sentences(count: int, rng: random.Random) -> list[tuple[str, int]]:
    rows = []
    for i in range(count):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 10))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append((" ".join(words), label))
    rng.shuffle(rows)
    return rows


def learnable(root: Path, train: int = 128, dev: int = 64, seed: int = 7) -> Path:
    """train.tsv and dev.tsv (SST-2 layout) of keyword sentences, label_list.txt with the label names,
    and sentences.txt: a few unlabelled sentences, one a line, for `predict`."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    write_tsv(root / "train.tsv", keyword_sentences(train, rng))
    write_tsv(root / "dev.tsv", keyword_sentences(dev, rng))
    (root / "label_list.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(LABEL_NAMES)))
    (root / "sentences.txt").write_text("".join(f"{text}\n" for text, _ in keyword_sentences(4, rng)))
    return root
