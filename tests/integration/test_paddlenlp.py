"""PaddleNLP's BERT-base and ERNIE-base in their images, on the training engine: masked-LM +
next-sentence pretraining on synthetic tokens at full size (the smoke), with its masked-LM accuracy;
JSON lines fine-tuning with a mounted vocabulary (--vocab) and a dev split; a malformed dataset;
two data-parallel workers; checkpoints that keep the vocabulary, and --resume.
Then the proof: a classifier learns a keyword-decided label from chance (0.5) to >= 0.9 accuracy on
dev.tsv, evaluates, exports for Paddle Inference with its vocabulary and predicts what it evaluated;
served, its predict route answers a sentence with what predict saved for it.

Everything but the full-size smoke runs a reduced-depth BERT / ERNIE through recipe overrides
(SMALL: 2 layers, hidden 64, 2 heads, a 512-token embedding, sequences of 32): the suite's own
classes, a model that trains in a fraction of a second a step. Slow; marked `docker`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sample_data import text as sample

from .helpers import docker, evaluations, image, invoke, learn, post, serving, training

MODELS = ["bert-base", "ernie-base"]
SHORT = ["-o", "DataLoader.max_seq_len=32"]
SMALL = [*SHORT, "-o", "Arch.num_hidden_layers=2", "-o", "Arch.hidden_size=64", "-o", "Arch.num_attention_heads=2",
         "-o", "Arch.intermediate_size=128", "-o", "Arch.vocab_size=512"]


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
def test_pretrains_full_size_on_synthetic_tokens_and_reports_masked_lm_accuracy(built, model):
    result = docker("run", "--rm", "--network", "none", image(model), "--steps", "1", "--eval-every", "1",
                    "-o", "Global.synthetic_samples=8", *SHORT)
    steps, summary = training(result.stdout)
    assert [(s, total) for s, total, _ in steps] == [(1, 1)] and finite(steps)
    assert summary["loss_finite"] and summary["data"] == "synthetic" and summary["unit"] == "sequences/s"
    assert summary["batch_size"] == 2 and summary["throughput"] > 0
    assert steps[0][2] > 5   # masked-LM over the full vocabulary plus next-sentence: about ln(vocab) + ln(2)
    [(step, metric)] = evaluations(result.stdout)
    assert step == 1 and set(metric) == {"mlm_accuracy", "nsp_accuracy"} and summary["best"]["metric"] == "mlm_accuracy"
    assert "schedule: Linear" in result.stdout and "Traceback" not in result.stderr


def test_fine_tunes_on_json_lines_with_a_mounted_vocabulary_and_evaluates_on_dev(built, tmp_path):
    data = sample.write(tmp_path / "data", "jsonl")
    sample.write_jsonl(data / "dev.jsonl", sample.SENTENCES[:4])
    chars = sorted({c for text, _ in sample.SENTENCES for c in text.lower() if not c.isspace()})
    (data / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars,
                                               *(f"##{c}" for c in chars), "film", "the"]) + "\n", encoding="utf-8")
    result = invoke("run", "ernie-base", "--data", str(data), "--", "--steps", "2", "--vocab", "/data/vocab.txt", *SMALL)
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["data"] == ("6 sentences from train.jsonl (JSON lines, 2 classes, vocab "
                               f"{5 + 2 * len(chars) + 2} from /data/vocab.txt), 4 for validation (dev.jsonl)")
    # one step an epoch (6 sentences, batch 32): evaluated every epoch, as the recipe says
    assert [s for s, _ in evaluations(result.stdout)] == [1, 2] and 0 <= summary["metric"]["accuracy"] <= 1


def test_a_malformed_dataset_exits_2_naming_file_and_line(built, tmp_path):
    data = sample.write(tmp_path / "data", "tsv")
    (data / "train.tsv").write_text("sentence\tlabel\na fine film\t1\nno label here\n")
    result = invoke("run", "ernie-base", "--data", str(data), "--", "--steps", "1", *SHORT, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/train.tsv:3: expected 2 tab-separated fields (sentence, label), got 1" in out
    assert "step 1/1" not in out and "Traceback" not in out


def test_two_data_parallel_workers(built, tmp_path):
    # With --network none, as invoke run starts it: single-node workers talk over loopback.
    data = sample.write(tmp_path / "data", "tsv")
    result = invoke("run", "ernie-base", "--data", str(data), "--devices", "2", "--", "--steps", "2",
                    "--batch-size", "2", *SMALL)
    steps, summary = training(result.stdout)
    assert "launching 2 data-parallel worker(s)" in result.stdout
    assert summary["workers"] == 2 and summary["loss_finite"] and finite(steps)
    assert summary["batch_size"] == 4 and [s for s, _, _ in steps] == [1, 2]


# --- the engine: a text classifier learns, evaluates, exports and predicts -------------------------
# The smallest configuration that shows learning: the reduced BERT (SMALL) on 128 keyword sentences
# (64 for validation), the sst2 recipe's AdamW with linear decay and 10% warm-up at a from-scratch
# learning rate, 60 steps of 16.
LEARN = ["--steps", "60", "--batch-size", "16", "--eval-every", "20", *SMALL, "-o", "Optimizer.lr.learning_rate=0.002"]


@pytest.fixture(scope="module")
def learned(built, tmp_path_factory):
    """BERT trained on the keyword set, its best checkpoint exported at the end."""
    # Subdirectories: pytest's own are private to root, the container's user must read and write them.
    data = sample.learnable(tmp_path_factory.mktemp("keywords") / "data")
    return learn("bert-base", data, tmp_path_factory, LEARN)


def test_a_text_classifier_learns_from_chance_to_over_90_percent(learned):
    data, out, output = learned
    steps, summary = training(output)
    assert [s for s, _, _ in steps] == list(range(1, 61))
    assert summary["data"].startswith("128 sentences from train.tsv (TSV, 2 classes, vocab ")   # built from it
    assert summary["data"].endswith("), 64 for validation (dev.tsv)")
    evals = evaluations(output)
    assert [s for s, _ in evals] == [20, 40, 60]
    print(f"\naccuracy by step (chance 0.5): {[(s, m['accuracy']) for s, m in evals]}")
    assert summary["metric"]["accuracy"] >= 0.9, output
    assert summary["best"]["metric"] == "accuracy" and summary["best"]["value"] >= 0.9
    assert steps[-1][2] < steps[0][2] / 2                                 # the loss fell
    assert "schedule: Linear 0.002 over 60 steps, linear warm-up from 0 over 6 steps" in output
    assert sorted(p.name for p in out.iterdir()) == ["best", "ckpt-000060", "inference", "metrics.jsonl", "vdl"]
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "eval"] == [20, 40, 60]
    assert sorted(p.name for p in (out / "inference").iterdir()) == \
        ["inference.json", "inference.pdiparams", "inference.yml", "labels.json", "vocab.txt"]


def test_eval_and_the_exported_model_predict_the_same(learned):
    """`eval` on dev.tsv and `predict` with the exported model (its own vocabulary, through Paddle
    Inference) give every dev sentence the same label; predict also reads plain sentence files."""
    data, out, _ = learned
    evaluated = invoke("run", "bert-base", "--data", str(data), "--output", str(out),
                       "--", "eval", "--predictions", "/output/eval.jsonl")
    assert '"event": "eval summary"' in evaluated.stdout
    predicted = invoke("run", "bert-base", "--data", str(data), "--output", str(out),
                       "--", "predict", "--input", "/data/dev.tsv", "--input", "/data/sentences.txt",
                       "--labels", "/data/label_list.txt", "--save", "/output/predict.jsonl")
    by_eval = {r["input"]: r["class_ids"][0] for r in map(json.loads, (out / "eval.jsonl").read_text().splitlines())}
    results = [json.loads(line) for line in (out / "predict.jsonl").read_text().splitlines()]
    by_predict = {Path(r["input"]).relative_to("/data").as_posix(): r["class_ids"][0] for r in results}
    assert len(by_eval) == 64 and {k: by_predict[k] for k in by_eval} == by_eval
    gold = {f"dev.tsv:{n}": int(line.rsplit("\t", 1)[1])
            for n, line in enumerate((data / "dev.tsv").read_text().splitlines()[1:], 2)}
    assert sum(by_eval[k] == gold[k] for k in by_eval) / len(by_eval) >= 0.9
    plain = [r for r in results if r["input"].startswith("/data/sentences.txt:")]
    assert len(plain) == 4 and all(r["label_names"][0] in ("negative", "positive") for r in plain)
    line = next(line for line in predicted.stdout.splitlines() if "predict /data/sentences.txt:1 |" in line)
    assert line.startswith("[bert-base] predict /data/sentences.txt:1 | ") and " | " + plain[0]["text"] in line


def test_the_predict_route_answers_a_sentence_with_what_predict_saves(learned):
    """`serve` of the export (its vocab.txt beside it): a dev sentence as text/plain, or JSON
    {"text": ...}, gets predict's text, classes, scores and label names; a body that is no text is a
    400 naming it, and the next request is served. Before the test below adds a checkpoint."""
    data, out, _ = learned
    invoke("run", "bert-base", "--data", str(data), "--output", str(out),
           "--", "predict", "--input", "/data/dev.tsv", "--threads", "1", "--save", "/output/predict-served.jsonl")
    by_predict = [json.loads(line) for line in (out / "predict-served.jsonl").read_text().splitlines()][:6]
    with serving(image("bert-base"), out) as (url, _):
        route = f"{url}/v2/models/bert-base/predict"
        for expected in by_predict:
            status, answer = post(route, expected["text"].encode(), "text/plain; charset=utf-8")
            assert status == 200, answer
            assert answer == {k: v for k, v in expected.items() if k != "input"}
        status, answer = post(route, json.dumps({"text": by_predict[0]["text"]}).encode(), "application/json")
        assert status == 200 and answer["scores"] == by_predict[0]["scores"]
        status, answer = post(route, b'{"text": "  "}', "application/json")
        assert status == 400 and "the request body: no text" in answer["error"]
        status, answer = post(route, b"\xff\xfe not utf-8", "text/plain")
        assert status == 400 and "not UTF-8" in answer["error"]
        assert post(route, by_predict[1]["text"].encode(), "text/plain")[0] == 200


def test_checkpoints_keep_the_vocabulary_and_resume_with_it(learned):
    """Last: it adds a checkpoint to the learned run's output (no evaluation, so best/ stays)."""
    data, out, _ = learned
    vocab = (out / "ckpt-000060" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "superb" in vocab
    assert (out / "best" / "vocab.txt").read_text(encoding="utf-8").splitlines() == vocab
    assert json.loads((out / "ckpt-000060" / "labels.json").read_text()) == ["0", "1"]
    resumed = invoke("run", "bert-base", "--data", str(data), "--output", str(out),
                     "--", "--steps", "61", "--resume", "--eval-every", "0", *SMALL)
    steps, summary = training(resumed.stdout)
    assert "resumed from /output/ckpt-000060 (step 60)" in resumed.stdout
    assert [s for s, _, _ in steps] == [61] and summary["first_step"] == 61 and finite(steps)
    assert steps[0][2] < 0.3                                                 # it goes on from the learned weights
    assert (out / "ckpt-000061" / "vocab.txt").read_text(encoding="utf-8").splitlines() == vocab
