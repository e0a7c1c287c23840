"""Text classification files for fine-tuning a language model: GLUE SST-2 style TSV (a header row
`sentence<TAB>label`, then one example per row) or JSON lines (`{"text": ..., "label": ...}` per
line, CLUE style; `sentence` is accepted for `text`). Labels are integer class ids, or names that are
numbered in sorted order. Paddle-free: the trainer tokenizes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainError
from . import data_root

# Looked for in this order when DataLoader.train_file is "auto".
DEFAULT_FILES = ("train.tsv", "train.jsonl", "train.json")
TEXT_KEYS = ("text", "sentence")
TSV_EXAMPLE = "a header 'sentence<TAB>label', then rows like 'a gripping , funny film<TAB>1' (GLUE SST-2)"
JSONL_EXAMPLE = 'one object per line like {"text": "a gripping, funny film", "label": 1}'
FORMAT_HELP = f"train.tsv ({TSV_EXAMPLE}) or train.jsonl ({JSONL_EXAMPLE})"


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    where: str          # file:line, for errors found later (e.g. while tokenizing)


@dataclass(frozen=True)
class TextDataset:
    path: Path
    examples: list[Example]
    label_names: list[str]      # label id -> the label as written in the file

    @property
    def kind(self) -> str:
        return "TSV" if self.path.suffix in (".tsv", ".txt") else "JSON lines"


def find_train_file(root: Path, train_file: str) -> Path:
    if train_file and train_file != "auto":
        path = root / train_file
        if not path.is_file():
            raise TrainError(f"{path}: missing; expected {FORMAT_HELP} (set with -o DataLoader.train_file=NAME)")
        return path
    for name in DEFAULT_FILES:
        if (root / name).is_file():
            return root / name
    raise TrainError(f"{root}: no {', '.join(DEFAULT_FILES)}; expected {FORMAT_HELP}")


def _rows(path: Path):
    """(line number, text) of every non-blank line; the line ending is dropped, nothing else."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrainError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            yield n, raw.rstrip("\r\n")


def read_tsv(path: Path) -> list[tuple[str, str, int]]:
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise TrainError(f"{path}: empty; expected {TSV_EXAMPLE}")
    n, header = first
    columns = [c.strip().lower() for c in header.split("\t")]
    text_col = next((columns.index(k) for k in TEXT_KEYS if k in columns), None)
    if text_col is None or "label" not in columns:
        raise TrainError(f"{path}:{n}: expected a header row with 'sentence' (or 'text') and 'label' "
                         f"columns separated by tabs, got {header!r}")
    label_col = columns.index("label")
    out = []
    for n, line in rows:
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise TrainError(f"{path}:{n}: expected {len(columns)} tab-separated fields "
                             f"({', '.join(columns)}), got {len(fields)}: {line!r}")
        text, label = fields[text_col].strip(), fields[label_col].strip()
        if not text:
            raise TrainError(f"{path}:{n}: empty sentence")
        if not label:
            raise TrainError(f"{path}:{n}: empty label")
        out.append((text, label, n))
    return out


def read_jsonl(path: Path) -> list[tuple[str, str, int]]:
    out = []
    for n, line in _rows(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainError(f"{path}:{n}: not valid JSON ({exc.msg}); expected {JSONL_EXAMPLE}") from None
        if not isinstance(row, dict):
            raise TrainError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}; expected {JSONL_EXAMPLE}")
        key = next((k for k in TEXT_KEYS if k in row), None)
        if key is None or "label" not in row:
            missing = "'text'" if key is None else "'label'"
            raise TrainError(f"{path}:{n}: no {missing} key; expected {JSONL_EXAMPLE}")
        text, label = row[key], row["label"]
        if not isinstance(text, str) or not text.strip():
            raise TrainError(f"{path}:{n}: '{key}' must be a non-empty string")
        if isinstance(label, bool) or not isinstance(label, (int, str)) or not str(label).strip():
            raise TrainError(f"{path}:{n}: 'label' must be an integer class id or a label name, got {label!r}")
        out.append((text.strip(), str(label).strip(), n))
    return out


def _is_id(label: str) -> bool:
    return label.isdigit()


def text_classification(root: str | Path, train_file: str, num_classes: int) -> TextDataset:
    """Parse the training file; label ids must fit the classifier (`Arch.num_classes`)."""
    root = data_root(root)
    path = find_train_file(root, train_file)
    rows = read_jsonl(path) if path.suffix in (".jsonl", ".json") else read_tsv(path)
    if not rows:
        raise TrainError(f"{path}: no examples; expected {TSV_EXAMPLE if path.suffix == '.tsv' else JSONL_EXAMPLE}")
    hint = "set the class count with -o Arch.num_classes=N"
    if all(_is_id(label) for _, label, _ in rows):
        for _, label, n in rows:
            if int(label) >= num_classes:
                raise TrainError(f"{path}:{n}: label {label} outside 0..{num_classes - 1}; {hint}")
        names = [str(i) for i in range(num_classes)]
        ids = {str(i): i for i in range(num_classes)} | {label: int(label) for _, label, _ in rows}
    else:
        names = sorted({label for _, label, _ in rows})
        if len(names) > num_classes:
            raise TrainError(f"{path}: {len(names)} distinct labels ({', '.join(names[:8])}"
                             f"{', ...' if len(names) > 8 else ''}) but Arch.num_classes is {num_classes}; {hint}")
        ids = {name: i for i, name in enumerate(names)}
    examples = [Example(text, ids[label], f"{path}:{n}") for text, label, n in rows]
    return TextDataset(path, examples, names)
