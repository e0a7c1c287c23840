"""Text classification files for fine-tuning a language model: GLUE SST-2 style TSV (a header row
`sentence<TAB>label`, then one example per row; PaddleNLP's ChnSentiCorp files name the column
`text_a`) or JSON lines (`{"text": ..., "label": ...}` per line, CLUE style; `sentence` is accepted
for `text`). Labels are integer class ids, or names that are numbered in sorted order. The
validation split (dev.tsv) is read with the training file's labels.

Also the sentences `predict` labels (a TSV or JSON lines file as above, labels optional, or plain
text, one sentence per line) and the WordPiece vocabulary: a mounted vocab.txt checked for the
special tokens, or one built from the training text. Paddle-free: the task tokenizes."""
from __future__ import annotations

import collections
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainError
from . import data_root

# Looked for in this order when DataLoader.train_file / dev_file is "auto".
DEFAULT_FILES = ("train.tsv", "train.jsonl", "train.json")
DEV_FILES = ("dev.tsv", "dev.jsonl", "dev.json")
TEXT_KEYS = ("text", "sentence", "text_a")
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


def _unreadable(path: Path) -> TrainError:
    return TrainError(f"{path}: permission denied for this process (uid {os.getuid()}: in the image, the user "
                      "kunlun); make the dataset readable to all (chmod -R a+rX DIR)")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except PermissionError:   # the directory itself cannot be searched
        raise _unreadable(path.parent) from None


def find_train_file(root: Path, train_file: str) -> Path:
    if train_file and train_file != "auto":
        path = root / train_file
        if not _is_file(path):
            raise TrainError(f"{path}: missing; expected {FORMAT_HELP} (set with -o DataLoader.train_file=NAME)")
        return path
    for name in DEFAULT_FILES:
        if _is_file(root / name):
            return root / name
    raise TrainError(f"{root}: no {', '.join(DEFAULT_FILES)}; expected {FORMAT_HELP}")


def find_dev_file(root: Path, dev_file: str | None) -> Path | None:
    """The validation split: a named file must exist; "auto" looks for dev.tsv, dev.jsonl, dev.json
    and is None when there is none (training without evaluation); None or "" means no evaluation."""
    if not dev_file:
        return None
    if dev_file != "auto":
        path = root / dev_file
        if not _is_file(path):
            raise TrainError(f"{path}: missing; expected the validation split in the training file's format "
                             "(set with -o DataLoader.dev_file=NAME, or -o DataLoader.dev_file=null for none)")
        return path
    return next((root / name for name in DEV_FILES if _is_file(root / name)), None)


def _rows(path: Path):
    """(line number, text) of every non-blank line; the line ending is dropped, nothing else."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrainError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except PermissionError:
        raise _unreadable(path) from None
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            yield n, raw.rstrip("\r\n")


def read_tsv(path: Path, labelled: bool = True) -> list[tuple[str, str | None, int]]:
    """(text, label, line) rows; unlabelled (predict): the label column may be absent (SST-2's test.tsv)."""
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise TrainError(f"{path}: empty; expected {TSV_EXAMPLE}")
    n, header = first
    columns = [c.strip().lower() for c in header.split("\t")]
    text_col = next((columns.index(k) for k in TEXT_KEYS if k in columns), None)
    if text_col is None or (labelled and "label" not in columns):
        wanted = "'sentence' (or 'text', 'text_a')" + (" and 'label' columns" if labelled else " column")
        raise TrainError(f"{path}:{n}: expected a header row with {wanted} separated by tabs, got {header!r}")
    label_col = columns.index("label") if "label" in columns else None
    out = []
    for n, line in rows:
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise TrainError(f"{path}:{n}: expected {len(columns)} tab-separated fields "
                             f"({', '.join(columns)}), got {len(fields)}: {line!r}")
        text = fields[text_col].strip()
        label = fields[label_col].strip() if label_col is not None else None
        if not text:
            raise TrainError(f"{path}:{n}: empty sentence")
        if labelled and not label:
            raise TrainError(f"{path}:{n}: empty label")
        out.append((text, label, n))
    return out


def read_jsonl(path: Path, labelled: bool = True) -> list[tuple[str, str | None, int]]:
    out = []
    for n, line in _rows(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainError(f"{path}:{n}: not valid JSON ({exc.msg}); expected {JSONL_EXAMPLE}") from None
        if not isinstance(row, dict):
            raise TrainError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}; expected {JSONL_EXAMPLE}")
        key = next((k for k in TEXT_KEYS if k in row), None)
        if key is None or (labelled and "label" not in row):
            missing = "'text'" if key is None else "'label'"
            raise TrainError(f"{path}:{n}: no {missing} key; expected {JSONL_EXAMPLE}")
        text, label = row[key], row.get("label")
        if not isinstance(text, str) or not text.strip():
            raise TrainError(f"{path}:{n}: '{key}' must be a non-empty string")
        if not labelled:
            out.append((text.strip(), None, n))
            continue
        if isinstance(label, bool) or not isinstance(label, (int, str)) or not str(label).strip():
            raise TrainError(f"{path}:{n}: 'label' must be an integer class id or a label name, got {label!r}")
        out.append((text.strip(), str(label).strip(), n))
    return out


def _read(path: Path, labelled: bool = True) -> list[tuple[str, str | None, int]]:
    return read_jsonl(path, labelled) if path.suffix in (".jsonl", ".json") else read_tsv(path, labelled)


def _is_id(label: str) -> bool:
    return label.isdigit()


def text_classification(root: str | Path, train_file: str, num_classes: int) -> TextDataset:
    """Parse the training file; label ids must fit the classifier (`Arch.num_classes`)."""
    root = data_root(root)
    path = find_train_file(root, train_file)
    rows = _read(path)
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


def validation_split(root: str | Path, dev_file: str | None, train: TextDataset) -> TextDataset | None:
    """The dev split with the training file's label ids (None: no dev file). A label the training
    file does not have is an error naming the dev file and line."""
    path = find_dev_file(data_root(root), dev_file)
    if path is None:
        return None
    rows = _read(path)
    if not rows:
        raise TrainError(f"{path}: no examples; expected the training file's format")
    examples = [Example(text, label_id(label, train.label_names, f"{path}:{n}"), f"{path}:{n}")
                for text, label, n in rows]
    return TextDataset(path, examples, train.label_names)


def label_id(label: str, names: list[str], where: str) -> int:
    """A label as written in a file, as an id of the classifier whose label names are `names`."""
    if label in names:
        return names.index(label)
    if label.isdigit() and names == [str(i) for i in range(len(names))]:
        raise TrainError(f"{where}: label {label} outside 0..{len(names) - 1}; set the class count with "
                         "-o Arch.num_classes=N")
    raise TrainError(f"{where}: label {label!r} is not one of the training labels ({', '.join(names)})")


def relabel(data: TextDataset, names: list[str]) -> TextDataset:
    """The same examples with the ids of a classifier trained with label names `names` (a checkpoint's):
    evaluation must score class i as the label the checkpoint called i."""
    if names == data.label_names:
        return data
    examples = [Example(e.text, label_id(data.label_names[e.label], names, e.where), e.where) for e in data.examples]
    return TextDataset(data.path, examples, names)


def sentences(path: Path) -> list[tuple[int, str]]:
    """(line, sentence) of a file `predict` labels: TSV or JSON lines as for training (labels
    optional: SST-2's test.tsv has `index<TAB>sentence`), anything else one sentence per line."""
    if path.suffix in (".tsv", ".jsonl", ".json"):
        return [(n, text) for text, _, n in _read(path, labelled=False)]
    return [(n, line.strip()) for n, line in _rows(path)]


# --- the vocabulary -------------------------------------------------------------------------------

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]   # a built vocabulary's ids 0..4 (pad id 0, as both configs say)


def build_vocab(texts: list[str], basic_tokenize, size: int) -> list[str]:
    """Special tokens, then every character (as a word and as a `##` continuation, so WordPiece can
    spell any word of the text), then whole words by frequency; at most `size` entries.
    `basic_tokenize` is the tokenizer's own pre-tokenizer (lower-casing, punctuation, CJK characters)."""
    words = collections.Counter(w for text in texts for w in basic_tokenize(text))
    chars = sorted({c for w in words for c in w})
    vocab, seen = [], set()
    for token in [*SPECIAL, *chars, *(f"##{c}" for c in chars),
                  *(w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])))]:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab[:size]


def read_vocab(path: str | Path, flag: str = "--vocab") -> list[str]:
    """A WordPiece vocab.txt (one token per line, the line number is the id), as PaddleNLP's
    BertTokenizer / ErnieTokenizer read it; the special tokens must be there."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{flag} {path}: no such file (a WordPiece vocab.txt, one token per line; "
                         "is it mounted into the container?)")
    try:
        tokens = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TrainError(f"{flag} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except PermissionError:
        raise _unreadable(path) from None
    tokens = [t.rstrip("\r") for t in tokens]
    while tokens and not tokens[-1].strip():
        tokens.pop()
    missing = [t for t in SPECIAL if t not in tokens]
    if missing:
        raise TrainError(f"{flag} {path}: no {', '.join(missing)} token{'s' if len(missing) > 1 else ''}; expected a "
                         "BERT/ERNIE WordPiece vocab.txt (one token per line, with [PAD], [UNK], [CLS], [SEP], [MASK])")
    return tokens
