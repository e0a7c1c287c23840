"""PaddleNLP's BERT-base and ERNIE-base (random init, base size) in their images: masked-LM +
next-sentence pretraining on synthetic tokens, SST-2 TSV and JSON lines fine-tuning with a vocabulary
built from the text, a malformed dataset, checkpoints (with the vocabulary) and two data-parallel
workers. Short sequences (-o DataLoader.max_seq_len=32) keep each run short. Slow; marked `docker`."""
from __future__ import annotations

import pytest

from tests.sample_data import text as sample

from .helpers import docker, image, invoke, training

pytestmark = pytest.mark.docker
MODELS = ["bert-base", "ernie-base"]
SHORT = ["-o", "DataLoader.max_seq_len=32"]


@pytest.fixture(scope="module")
def built(build):
    build("bert-base", "ernie-base")


def finite(steps) -> bool:
    return all(loss == loss and abs(loss) < 1e6 for _, _, loss in steps)


def test_the_suite_layer_has_jieba_built_from_its_sdist_and_no_build_tools(built):
    """jieba (no wheel on PyPI) was built in the image from the locked sdist; setuptools/wheel only built it."""
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "ls", image("bert-base"),
                    "/opt/kunlun/suites/paddlenlp")
    listing = result.stdout.split()
    assert "jieba" in listing and "jieba-0.42.1.dist-info" in listing
    assert not any(name.startswith(("wheel-", "setuptools-")) for name in listing), listing


@pytest.mark.parametrize("model", MODELS)
def test_pretrains_on_synthetic_tokens(built, model):
    result = docker("run", "--rm", "--network", "none", image(model), "--steps", "2", *SHORT)
    steps, summary = training(result.stdout)
    assert [(s, total) for s, total, _ in steps] == [(1, 2), (2, 2)] and finite(steps)
    assert summary["loss_finite"] and summary["data"] == "synthetic" and summary["unit"] == "sequences/s"
    assert summary["batch_size"] == 2 and summary["throughput"] > 0
    assert steps[0][2] > 5   # masked-LM over the full vocabulary plus next-sentence: about ln(vocab) + ln(2)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("model, kind, name", [("bert-base", "tsv", "train.tsv (TSV"),
                                               ("ernie-base", "jsonl", "train.jsonl (JSON lines")])
def test_fine_tunes_on_a_text_classification_dataset(built, tmp_path, model, kind, name):
    data = sample.write(tmp_path / "data", kind)
    result = invoke("run", model, "--data", str(data), "--", "--steps", "2", *SHORT)
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["data"].startswith(f"6 sentences from {name}, 2 classes, vocab ")
    assert all(loss < 5 for _, _, loss in steps)   # a 2-class head, not the masked-LM loss


def test_a_malformed_dataset_exits_2_naming_file_and_line(built, tmp_path):
    data = sample.write(tmp_path / "data", "tsv")
    (data / "train.tsv").write_text("sentence\tlabel\na fine film\t1\nno label here\n")
    result = invoke("run", "ernie-base", "--data", str(data), "--", "--steps", "1", *SHORT, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/train.tsv:3: expected 2 tab-separated fields (sentence, label), got 1" in out
    assert "step 1/1" not in out and "Traceback" not in out


def test_saves_the_vocabulary_with_the_checkpoint_and_resumes(built, tmp_path):
    data = sample.write(tmp_path / "data", "tsv")
    out = tmp_path / "out"
    first = invoke("run", "bert-base", "--data", str(data), "--output", str(out), "--", "--steps", "2", *SHORT)
    assert [s for s, _, _ in training(first.stdout)[0]] == [1, 2]
    ckpt = out / "ckpt-000002"
    assert (ckpt / "model.pdparams").is_file() and (ckpt / "model.pdopt").is_file()
    vocab = (ckpt / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "gripping" in vocab and "电" in vocab

    resumed = invoke("run", "bert-base", "--data", str(data), "--output", str(out),
                     "--", "--steps", "3", "--resume", *SHORT)
    steps, summary = training(resumed.stdout)
    assert "resumed from /output/ckpt-000002 (step 2)" in resumed.stdout
    assert [s for s, _, _ in steps] == [3] and summary["first_step"] == 3 and finite(steps)
    assert (out / "ckpt-000003" / "vocab.txt").read_text(encoding="utf-8").splitlines() == vocab


def test_two_data_parallel_workers(built):
    # With --network none, as invoke run starts it: single-node workers talk over loopback.
    result = docker("run", "--rm", "--network", "none", image("ernie-base"),
                    "--steps", "2", "--devices", "2", *SHORT)
    steps, summary = training(result.stdout)
    assert summary["workers"] == 2 and summary["loss_finite"] and finite(steps)
    assert summary["batch_size"] == 4 and [s for s, _, _ in steps] == [1, 2]
