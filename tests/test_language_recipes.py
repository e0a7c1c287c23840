"""BERT-base and ERNIE-base as their images carry them (matrix.yaml -> recipe.json): PaddleNLP's
upstream fine-tuning and pretraining recipes, the smoke a default `docker run` makes, and the
`--vocab FILE` option. Paddle-free: run on the host."""
import json
from pathlib import Path

import pytest

from kunlun_bundle import matrix as matrix_mod
from kunlun_bundle.images.kinds import recipe_json
from kunlun_train import cli, schedule

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def m():
    return matrix_mod.load(ROOT / "matrix.yaml")


@pytest.fixture
def image(m, tmp_path, monkeypatch):
    """The entrypoint as in a model's image: its recipe.json, its model name."""
    def use(model: str) -> Path:
        path = tmp_path / f"{model}.json"
        path.write_bytes(recipe_json(m, model))
        monkeypatch.setenv("KUNLUN_RECIPE", str(path))
        monkeypatch.setenv("KUNLUN_MODEL", model)
        return path
    return use


def test_bert_fine_tunes_on_sst2_as_run_glue_py(m):
    """model_zoo/bert/run_glue.py: max_seq_len 128, batch 32, lr 2e-5, 3 epochs, AdamW eps 1e-6, no
    weight decay, linear decay after a warm-up over 10% of the run, seed 42."""
    recipes = m.recipes("bert-base")
    assert list(recipes) == ["sst2", "pretrain"]                            # the default first
    sst2 = recipes["sst2"]
    assert sst2["Global"]["epochs"] == 3 and sst2["Global"]["seed"] == 42
    assert sst2["Arch"]["config"] == "bert-base-uncased" and sst2["Arch"]["num_classes"] == 2
    assert (sst2["DataLoader"]["batch_size"], sst2["DataLoader"]["max_seq_len"]) == (32, 128)
    opt = sst2["Optimizer"]
    assert (opt["name"], opt["epsilon"], opt["weight_decay"]) == ("AdamW", 1e-6, 0.0)
    assert opt["lr"] == {"name": "Linear", "learning_rate": 2e-5, "warmup_proportion": 0.1}
    size = schedule.length(sst2, 67349, 32)                                 # SST-2's training set
    plan = schedule.plan(opt["lr"], size, 32)
    assert plan.total_steps == 3 * 2104 and plan.warmup_steps == 631 and plan.lr_at(631) == pytest.approx(2e-5)


def test_bert_pretrains_as_run_pretrain_py(m):
    pretrain = m.recipes("bert-base")["pretrain"]
    assert pretrain["Global"]["objective"] == "pretraining" and pretrain["Global"]["iters"] == 1_000_000
    assert pretrain["Pretrain"] == {"mask_prob": 0.15, "max_predictions": 20}
    opt = pretrain["Optimizer"]
    assert (opt["epsilon"], opt["weight_decay"], opt["lr"]["learning_rate"], opt["lr"]["warmup_steps"]) == \
        (1e-6, 0.01, 1e-4, 10000)


def test_ernie_fine_tunes_on_chnsenticorp_as_its_train_py(m):
    """examples/text_classification/pretrained_models/train.py: lr 5e-5, batch 32, 3 epochs,
    max_seq_len 128, weight decay 0, no warm-up in the code, seed 1000."""
    [name] = m.recipes("ernie-base")
    r = m.recipes("ernie-base")[name]
    assert name == "chnsenticorp" and r["Arch"]["config"] == "ernie-1.0-base-zh"
    assert (r["Global"]["epochs"], r["Global"]["seed"], r["DataLoader"]["batch_size"], r["DataLoader"]["max_seq_len"]) \
        == (3, 1000, 32, 128)
    assert r["Optimizer"]["weight_decay"] == 0.0
    assert r["Optimizer"]["lr"] == {"name": "Linear", "learning_rate": 5e-5, "warmup_proportion": 0.0}


@pytest.mark.parametrize("model", ["bert-base", "ernie-base"])
def test_a_default_run_is_a_short_pretraining_smoke_and_data_runs_the_recipe(image, model, tmp_path):
    image(model)
    _, smoke = cli.prepare(["--threads", "1"])
    assert smoke["Global"]["steps"] == 10 and smoke["DataLoader"]["batch_size"] == 2
    assert smoke["DataLoader"]["max_seq_len"] == 64
    _, real = cli.prepare(["--data", str(tmp_path), "--threads", "1"])
    assert real["Global"]["steps"] is None and real["DataLoader"]["batch_size"] == 32


def test_a_reduced_depth_model_is_a_few_overrides(image):
    image("bert-base")
    _, recipe = cli.prepare(["--threads", "1", "-o", "Arch.num_hidden_layers=2", "-o", "Arch.hidden_size=64",
                             "-o", "Arch.num_attention_heads=2", "-o", "Arch.intermediate_size=128",
                             "-o", "Arch.vocab_size=512"])
    assert {k: recipe["Arch"][k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                           "intermediate_size", "vocab_size")} == \
        {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128, "vocab_size": 512}


@pytest.mark.parametrize("command", [[], ["eval", "--weights", "w.pdparams"], ["export", "--weights", "w.pdparams", "--to", "x"],
                                     ["predict", "--model", "m", "--input", "s.txt"]])
def test_vocab_names_the_vocabulary_for_every_command(image, command):
    image("ernie-base")
    args, recipe = cli.prepare([*command, "--vocab", "/vocab/vocab.txt", "--threads", "1"])
    assert args.vocab == "/vocab/vocab.txt" and recipe["Tokenizer"]["vocab_file"] == "/vocab/vocab.txt"
    _, recipe = cli.prepare([*command, "--threads", "1"])
    assert recipe["Tokenizer"]["vocab_file"] is None                            # built from the data


def test_only_language_models_take_vocab(image, m, tmp_path, monkeypatch, capsys):
    path = tmp_path / "resnet50.json"
    path.write_bytes(recipe_json(m, "resnet50"))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    with pytest.raises(SystemExit) as info:
        cli.prepare(["--vocab", "v.txt"])
    assert info.value.code == 2 and "unrecognized arguments: --vocab" in capsys.readouterr().err


def test_help_shows_the_vocab_option(image, capsys):
    image("bert-base")
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--vocab FILE" in text and "--recipe NAME" in text and "sst2, pretrain" in text


def test_print_recipe_shows_the_upstream_recipe_and_the_smoke(image, capsys):
    image("bert-base")
    assert cli.main(["--print-recipe"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["recipe"] == "sst2" and view["smoke_applied"]
    assert view["upstream"]["Optimizer"]["lr"]["warmup_proportion"] == 0.1
    assert view["effective"]["Global"]["steps"] == 10
