"""Text classification files for BERT / ERNIE fine-tuning (SST-2 TSV, JSON lines, ChnSentiCorp's
columns; the dev split), predict's sentence files and the vocabulary: a good layout parses, every
kind of bad layout names the file (and line). Also the paddlenlp suite's lock: its
`no_deps` packages (jieba has no wheel) are locked as pinned, built by the image's build tools."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kunlun_bundle import matrix as matrix_mod
from kunlun_bundle.images import lock, render
from kunlun_bundle.images.chain import unique_layers, all_ready
from kunlun_train.datasets import text
from kunlun_train.errors import TrainError

from tests.sample_data import text as sample

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sst(tmp_path) -> Path:
    return sample.write(tmp_path / "sst2", "tsv")


@pytest.fixture
def jsonl(tmp_path) -> Path:
    return sample.write(tmp_path / "clue", "jsonl")


def test_an_sst2_tsv_parses(sst):
    data = text.text_classification(sst, "auto", 2)
    assert data.path == sst / "train.tsv" and data.kind == "TSV"
    assert [(e.text, e.label) for e in data.examples] == sample.SENTENCES
    assert data.examples[0].where == f"{sst / 'train.tsv'}:2" and data.label_names == ["0", "1"]


def test_json_lines_parse_with_text_or_sentence_keys(jsonl):
    data = text.text_classification(jsonl, "auto", 2)
    assert data.kind == "JSON lines" and [(e.text, e.label) for e in data.examples] == sample.SENTENCES
    (jsonl / "train.jsonl").write_text('{"sentence": "good", "label": 1}\n\n{"sentence": "bad", "label": "0"}\n')
    data = text.text_classification(jsonl, "auto", 2)
    assert [(e.text, e.label, e.where.rsplit(":", 1)[1]) for e in data.examples] == [("good", 1, "1"), ("bad", 0, "3")]


def test_label_names_are_numbered_in_sorted_order(tmp_path):
    path = tmp_path / "d" / "train.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps({"text": t, "label": l}) + "\n"
                            for t, l in [("a", "sports"), ("b", "finance"), ("c", "sports")]))
    data = text.text_classification(path.parent, "auto", 2)
    assert data.label_names == ["finance", "sports"] and [e.label for e in data.examples] == [1, 0, 1]


def test_the_train_file_can_be_named_and_tsv_is_looked_for_first(sst):
    sample.write_jsonl(sst / "train.jsonl")
    assert text.text_classification(sst, "auto", 2).path.name == "train.tsv"
    assert text.text_classification(sst, "train.jsonl", 2).path.name == "train.jsonl"
    sample.write_tsv(sst / "dev.tsv")
    assert text.text_classification(sst, "dev.tsv", 2).path.name == "dev.tsv"


def test_extra_tsv_columns_are_allowed(tmp_path):
    path = tmp_path / "d" / "train.tsv"
    path.parent.mkdir()
    path.write_text("id\tlabel\tsentence\n7\t1\tfine film\n")
    assert [(e.text, e.label) for e in text.text_classification(path.parent, "auto", 2).examples] == [("fine film", 1)]


def test_not_a_directory(tmp_path):
    with pytest.raises(TrainError, match="not a directory"):
        text.text_classification(tmp_path / "nope", "auto", 2)


def test_no_training_file_says_what_is_expected(tmp_path):
    with pytest.raises(TrainError, match=r"no train.tsv, train.jsonl, train.json; expected train.tsv \(a header"):
        text.text_classification(tmp_path, "auto", 2)
    with pytest.raises(TrainError, match=r"dev.tsv: missing; .*-o DataLoader.train_file=NAME"):
        text.text_classification(tmp_path, "dev.tsv", 2)


@pytest.mark.parametrize("content, error", [
    ("", r"train.tsv: empty"),
    ("a gripping film\t1\n", r"train.tsv:1: expected a header row with 'sentence'"),
    ("sentence,label\ngood,1\n", r"train.tsv:1: expected a header row"),
    ("sentence\tlabel\ngood film\n", r"train.tsv:2: expected 2 tab-separated fields \(sentence, label\), got 1"),
    ("sentence\tlabel\ngood\t1\nbad\t0\textra\n", r"train.tsv:3: expected 2 tab-separated fields"),
    ("sentence\tlabel\n \t1\n", r"train.tsv:2: empty sentence"),
    ("sentence\tlabel\ngood\t \n", r"train.tsv:2: empty label"),
    ("sentence\tlabel\n", r"train.tsv: no examples"),
    ("sentence\tlabel\ngood\t1\nbad\t5\n", r"train.tsv:3: label 5 outside 0..1; set the class count with -o Arch.num_classes=N"),
    ("sentence\tlabel\na\tx\nb\ty\nc\tz\n", r"train.tsv: 3 distinct labels \(x, y, z\) but Arch.num_classes is 2"),
])
def test_a_bad_tsv_names_the_file_and_line(tmp_path, content, error):
    (tmp_path / "train.tsv").write_text(content)
    with pytest.raises(TrainError, match=error):
        text.text_classification(tmp_path, "auto", 2)


@pytest.mark.parametrize("content, error", [
    ('{"text": "good", "label": 1}\n{"text": "bad", "label": 0\n', r"train.jsonl:2: not valid JSON"),
    ('["good", 1]\n', r"train.jsonl:1: expected a JSON object, got list"),
    ('{"label": 1}\n', r"train.jsonl:1: no 'text' key"),
    ('{"text": "good"}\n', r"train.jsonl:1: no 'label' key"),
    ('{"text": "", "label": 1}\n', r"train.jsonl:1: 'text' must be a non-empty string"),
    ('{"text": 3, "label": 1}\n', r"train.jsonl:1: 'text' must be a non-empty string"),
    ('{"text": "good", "label": [1]}\n', r"train.jsonl:1: 'label' must be an integer class id or a label name"),
    ('{"text": "good", "label": true}\n', r"train.jsonl:1: 'label' must be"),
    ('{"text": "good", "label": 2}\n', r"train.jsonl:1: label 2 outside 0..1"),
])
def test_bad_json_lines_name_the_file_and_line(tmp_path, content, error):
    (tmp_path / "train.jsonl").write_text(content)
    with pytest.raises(TrainError, match=error):
        text.text_classification(tmp_path, "auto", 2)


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\n\xff\xfe bad\t1\n")
    with pytest.raises(TrainError, match=r"train.tsv: not UTF-8 text"):
        text.text_classification(tmp_path, "auto", 2)


@pytest.mark.skipif(os.getuid() == 0, reason="root reads any file")
def test_an_unreadable_dataset_says_so(sst):
    (sst / "train.tsv").chmod(0)
    with pytest.raises(TrainError, match=r"train.tsv: permission denied .* chmod -R a\+rX DIR"):
        text.text_classification(sst, "auto", 2)
    sst.chmod(0o300)   # not listable nor searchable... writable only
    try:
        with pytest.raises(TrainError, match=r"sst2: permission denied"):
            text.text_classification(sst, "auto", 2)
    finally:
        sst.chmod(0o755)


# --- the validation split, ChnSentiCorp's columns, predict's sentence files ------------------------

def test_the_dev_split_is_found_and_read_with_the_training_labels(tmp_path):
    sample.write_tsv(tmp_path / "train.tsv", [("good", "pos"), ("bad", "neg")])
    sample.write_tsv(tmp_path / "dev.tsv", [("fine", "pos"), ("awful", "neg"), ("great", "pos")])
    train = text.text_classification(tmp_path, "auto", 2)
    dev = text.validation_split(tmp_path, "auto", train)
    assert dev.path == tmp_path / "dev.tsv" and dev.label_names == ["neg", "pos"]
    assert [(e.text, e.label) for e in dev.examples] == [("fine", 1), ("awful", 0), ("great", 1)]
    assert dev.examples[2].where == f"{tmp_path / 'dev.tsv'}:4"


def test_no_dev_file_means_no_evaluation_and_a_named_one_must_exist(sst):
    train = text.text_classification(sst, "auto", 2)
    assert text.validation_split(sst, "auto", train) is None
    assert text.validation_split(sst, None, train) is None
    with pytest.raises(TrainError, match=r"valid.tsv: missing; .*-o DataLoader.dev_file=NAME"):
        text.validation_split(sst, "valid.tsv", train)
    sample.write_jsonl(sst / "dev.jsonl")
    assert text.validation_split(sst, "auto", train).kind == "JSON lines"


@pytest.mark.parametrize("rows, error", [
    ([("fine", "2")], r"dev.tsv:2: label 2 outside 0..1; set the class count with -o Arch.num_classes=N"),
    ([("fine", "1"), ("meh", "neutral")], r"dev.tsv:3: label 'neutral' is not one of the training labels \(0, 1\)"),
])
def test_a_dev_label_the_classifier_does_not_have_is_named(sst, rows, error):
    sample.write_tsv(sst / "dev.tsv", rows)
    with pytest.raises(TrainError, match=error):
        text.validation_split(sst, "auto", text.text_classification(sst, "auto", 2))


def test_chnsenticorp_files_name_the_text_column_text_a(tmp_path):
    """PaddleNLP's ChnSentiCorp: train.tsv `label<TAB>text_a`, dev.tsv `qid<TAB>label<TAB>text_a`."""
    (tmp_path / "train.tsv").write_text("label\ttext_a\n1\t房间很干净\n0\t服务太差\n", encoding="utf-8")
    (tmp_path / "dev.tsv").write_text("qid\tlabel\ttext_a\n0\t1\t早餐不错\n", encoding="utf-8")
    train = text.text_classification(tmp_path, "auto", 2)
    assert [(e.text, e.label) for e in train.examples] == [("房间很干净", 1), ("服务太差", 0)]
    assert [(e.text, e.label) for e in text.validation_split(tmp_path, "auto", train).examples] == [("早餐不错", 1)]


def test_examples_are_renumbered_to_a_checkpoints_label_names(tmp_path):
    sample.write_tsv(tmp_path / "train.tsv", [("good", "pos"), ("bad", "neg")])
    data = text.text_classification(tmp_path, "auto", 2)                    # neg 0, pos 1 (sorted)
    swapped = text.relabel(data, ["pos", "neg"])
    assert [e.label for e in swapped.examples] == [0, 1] and swapped.label_names == ["pos", "neg"]
    assert text.relabel(data, data.label_names) is data
    with pytest.raises(TrainError, match=r"train.tsv:3: label 'neg' is not one of the training labels \(pos, x\)"):
        text.relabel(data, ["pos", "x"])


def test_predict_reads_sentences_from_tsv_json_lines_or_plain_text(tmp_path):
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\tit 's a charming journey .\n1\tflat .\n")
    (tmp_path / "dev.jsonl").write_text('{"text": "good", "label": 1}\n{"text": "no label"}\n')
    (tmp_path / "lines.txt").write_text("first sentence\n\n  second one  \n")
    assert text.sentences(tmp_path / "test.tsv") == [(2, "it 's a charming journey ."), (3, "flat .")]
    assert text.sentences(tmp_path / "dev.jsonl") == [(1, "good"), (2, "no label")]
    assert text.sentences(tmp_path / "lines.txt") == [(1, "first sentence"), (3, "second one")]
    (tmp_path / "bad.tsv").write_text("id\tlabel\n0\t1\n")
    with pytest.raises(TrainError, match=r"bad.tsv:1: expected a header row with 'sentence' \(or 'text', 'text_a'\) column"):
        text.sentences(tmp_path / "bad.tsv")


# --- the vocabulary ------------------------------------------------------------------------------

def test_a_built_vocabulary_spells_every_word_and_keeps_frequent_words_whole():
    vocab = text.build_vocab(["the cat", "the hat"], str.split, size=100)
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = ["a", "c", "e", "h", "t"]
    assert vocab[5:15] == chars + [f"##{c}" for c in chars]
    assert vocab[15:] == ["the", "cat", "hat"]                     # by frequency, then alphabetically
    assert text.build_vocab(["the cat", "the hat"], str.split, size=8) == vocab[:8]


def test_a_mounted_vocabulary_needs_the_special_tokens(tmp_path):
    good = tmp_path / "vocab.txt"
    good.write_text("[PAD]\n[unused0]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\n\n")
    assert text.read_vocab(good) == ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s"]
    (tmp_path / "bad.txt").write_text("[PAD]\n[UNK]\n[CLS]\nthe\n")
    with pytest.raises(TrainError, match=r"--vocab .*bad.txt: no \[SEP\], \[MASK\] tokens; expected a BERT/ERNIE WordPiece"):
        text.read_vocab(tmp_path / "bad.txt")
    with pytest.raises(TrainError, match=r"--vocab .*nope.txt: no such file"):
        text.read_vocab(tmp_path / "nope.txt")


# --- the learnable set the integration test trains on ---------------------------------------------

def test_the_learnable_set_is_balanced_and_one_keyword_decides_each_label(tmp_path):
    root = sample.learnable(tmp_path / "kw")
    train = text.text_classification(root, "auto", 2)
    dev = text.validation_split(root, "auto", train)
    assert (len(train.examples), len(dev.examples)) == (128, 64)
    for split in (train, dev):
        assert sum(e.label for e in split.examples) == len(split.examples) // 2       # chance is 0.5
        for e in split.examples:
            keywords = [w for w in e.text.split() if w in sample.POSITIVE + sample.NEGATIVE]
            assert len(keywords) == 1 and (keywords[0] in sample.POSITIVE) == (e.label == 1)
    assert {e.text for e in train.examples}.isdisjoint({e.text for e in dev.examples})
    assert [len(text.sentences(root / "sentences.txt"))] == [4]


# --- the suite's lock: packages without their dependencies, sdists built in the image -----------------

def test_the_matrix_rejects_a_no_deps_package_that_is_not_pinned_exactly(write_matrix):
    def loosen(data):
        data["suites"]["paddlenlp"]["no_deps"] = ["jieba>=0.42"]
    with pytest.raises(Exception, match=r"suites.paddlenlp.no_deps.0.*pinned exactly, like 'jieba==0.42.1'"):
        matrix_mod.load(write_matrix(loosen))


def test_no_deps_packages_are_resolved_without_dependencies_and_may_be_sdists(monkeypatch):
    """pip runs with --no-deps and without --only-binary for them; an sdist is recorded as is."""
    seen = []

    def fake(requirements, target, no_deps=False, sdists=False):
        seen.append((tuple(requirements), no_deps, sdists))
        if sdists:
            return [lock.Wheel("jieba", "0.42.1", "ab" * 32, "https://files.example/jieba-0.42.1.tar.gz")]
        if requirements == ["paddlenlp==2.8.1"]:
            return [lock.Wheel("paddlenlp", "2.8.1", "cd" * 32, "https://files.example/paddlenlp-2.8.1-py3-none-any.whl")]
        if no_deps:   # the build tools
            return [lock.Wheel(canonical, "1", "ef" * 32, f"https://files.example/{canonical}-1-py3-none-any.whl")
                    for canonical in requirements]
        return [lock.Wheel("numpy", "1.26.4", "00" * 32, "https://files.example/numpy.whl"),
                lock.Wheel("jieba", "0.39", "11" * 32, "https://files.example/jieba-0.39.tar.gz"),   # a dep's own pin
                lock.Wheel("regex", "1", "22" * 32, "https://files.example/regex-1-py3-none-any.whl")]

    monkeypatch.setattr(lock, "pip_resolve", fake)
    m = matrix_mod.load(ROOT / "matrix.yaml")
    layer = next(l for l in unique_layers(all_ready(m)) if l.kind == "suite" and l.name == "paddlenlp")
    locked = lock.resolve(m, layer, ROOT)
    names = {w.name: w for w in locked.wheels}
    assert names["jieba"].version == "0.42.1" and names["jieba"].is_sdist         # the matrix's pin wins
    assert set(lock.BUILD_TOOLS) <= set(names) and "numpy" not in names             # numpy: the framework's
    assert (tuple(m.suites["paddlenlp"].no_deps), True, True) in seen


def test_pip_is_asked_for_sdists_only_without_dependencies(monkeypatch):
    captured = {}

    def fake_pip(cmd, capture_output, text):
        captured["cmd"] = cmd
        Path(cmd[cmd.index("--report") + 1]).write_text(json.dumps({"install": [{
            "metadata": {"name": "jieba", "version": "0.42.1"},
            "download_info": {"url": "https://files.example/jieba-0.42.1.tar.gz",
                              "archive_info": {"hashes": {"sha256": "ab" * 32}}}}]}))
        import subprocess
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(lock.subprocess, "run", fake_pip)
    target = lock.Target("manylinux_2_36_aarch64", "3.11")
    [jieba] = lock.pip_resolve(["jieba==0.42.1"], target, no_deps=True, sdists=True)
    assert jieba.is_sdist and jieba.filename == "jieba-0.42.1.tar.gz"
    assert "--only-binary=:all:" not in captured["cmd"] and "--no-deps" in captured["cmd"]
    assert "--platform=manylinux_2_36_aarch64" in captured["cmd"]
    with pytest.raises(ValueError):
        lock.pip_resolve(["jieba==0.42.1"], target, sdists=True)


def test_the_committed_paddlenlp_locks_hold_the_sdist_and_the_build_tools():
    for arch in ("x86_64", "aarch64"):
        wheels = {w.name: w for w in lock.LockFile.read(ROOT / f"locks/{arch}/cpu/paddlenlp.txt").wheels}
        assert wheels["jieba"].filename == "jieba-0.42.1.tar.gz" and wheels["seqeval"].version == "0.0.10"
        assert all(tool in wheels and not wheels[tool].is_sdist for tool in lock.BUILD_TOOLS)
        assert [w.name for w in wheels.values() if w.is_sdist] == ["jieba"]


def test_the_suite_image_builds_sdists_offline_with_the_locked_build_tools_only():
    m = matrix_mod.load(ROOT / "matrix.yaml")
    layer = next(l for l in unique_layers(all_ready(m)) if l.kind == "suite" and l.name == "paddlenlp")
    dockerfile = render.render_layer(m, layer, ROOT)
    tools = "|".join(lock.BUILD_TOOLS)
    assert f"grep -E '^({tools})==' /tmp/kunlun/lock.txt > /tmp/kunlun/build-tools.txt" in dockerfile
    assert f"grep -vE '^({tools})==' /tmp/kunlun/lock.txt > /tmp/kunlun/suite.txt" in dockerfile
    assert "--no-build-isolation --target /opt/kunlun/suites/paddlenlp" in dockerfile
    assert "--no-index" in dockerfile and "-r /tmp/kunlun/suite.txt" in dockerfile
    other = next(l for l in unique_layers(all_ready(m)) if l.kind == "suite" and not m.suites[l.name].no_deps)
    assert "build-tools" not in render.render_layer(m, other, ROOT)
