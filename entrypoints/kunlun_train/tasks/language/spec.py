"""Text classification fine-tuning and masked-LM pretraining (PaddleNLP): what the CLI knows before
Paddle is imported. The readers are datasets/text.py."""
from __future__ import annotations

from ..contract import Spec

SPECS = {
    "language-model": Spec(
        "language", "Task",
        "a directory with train.tsv (SST-2 style: a header 'sentence<TAB>label', then rows; ChnSentiCorp's "
        "'label<TAB>text_a' too) or train.jsonl ('{\"text\": ..., \"label\": ...}' lines) for text-classification "
        "fine-tuning, and dev.tsv / dev.jsonl for its accuracy; the vocabulary is --vocab FILE or built from it",
        {"DataLoader": {"train_file": "auto", "dev_file": "auto"}},
        synthetic="masked-LM + next-sentence pretraining on random token ids", vocabulary=True),
}
