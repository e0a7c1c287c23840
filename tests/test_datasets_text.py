"""Text classification files for BERT / ERNIE fine-tuning (SST-2 TSV, JSON lines): a good layout
parses, every kind of bad layout names the file (and line). Also the paddlenlp suite's lock: its
`no_deps` packages (jieba has no wheel) are locked as pinned, built by the image's build tools."""
from __future__ import annotations

import json
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
