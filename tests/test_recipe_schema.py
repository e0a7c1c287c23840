"""Recipes are checked where they are written. One schema per task (entrypoints/kunlun_train/schema.py)
is read by `invoke list`, `render` and `build` (any matrix load) for matrix.yaml's recipes, and by the
image for `-o` overrides, before Paddle is imported."""
import json

import pytest
import yaml

from kunlun_train import cli
from kunlun_train.errors import TrainError

from kunlun_bundle import matrix
from kunlun_bundle.images import kinds
from kunlun_bundle.errors import MatrixError


def imagenet(data):
    return data["models"]["resnet50"]["recipes"]["imagenet"]


MUTATIONS = {
    "an unknown key": (lambda d: imagenet(d)["Global"].update(epoch=120),
                       "models.resnet50.recipes.imagenet.Global.epoch: unknown key (known here: "),
    "a wrong type": (lambda d: imagenet(d)["Optimizer"].update(momentum="high"),
                     "models.resnet50.recipes.imagenet.Optimizer.momentum: expected a number in 0..1, got 'high'"),
    "a negative batch": (lambda d: imagenet(d)["DataLoader"].update(batch_size=-64),
                         "models.resnet50.recipes.imagenet.DataLoader.batch_size: expected an integer >= 1, got -64"),
    "a list for a number": (lambda d: imagenet(d)["Optimizer"]["lr"].update(learning_rate=[0.1]),
                            "models.resnet50.recipes.imagenet.Optimizer.lr.learning_rate: expected a number >= 0, got [0.1]"),
    "a bad smoke override": (lambda d: d["models"]["resnet50"]["smoke"]["Global"].update(steps=0),
                             "models.resnet50.smoke.Global.steps: expected an integer >= 1 (or null), got 0"),
    "a bad shared key": (lambda d: d["tasks"]["classification"]["recipe"]["Train"].update(crop_scale=[0.08]),
                         "tasks.classification.recipe.Train.crop_scale: expected a list of numbers of 2, got 1 items"),
    # Operator arguments, against the signatures in the suites' wheels (configs/signatures.json):
    "an unknown operator argument": (
        lambda d: d["tasks"]["instance-segmentation"]["recipe"]["Train"]["batch_transforms"]["PadBatch"].update(pad=1),
        "tasks.instance-segmentation.recipe.Train.batch_transforms.PadBatch.pad: PadBatch takes no argument 'pad' "
        "(it takes: pad_to_stride)"),
    "a list for an operator's switch": (
        lambda d: d["tasks"]["detection"]["recipe"]["Train"]["batch_transforms"]["BatchRandomResize"].update(
            random_size=[320, 608]),
        "tasks.detection.recipe.Train.batch_transforms.BatchRandomResize.random_size: BatchRandomResize's "
        "random_size: expected true or false (or null), got [320, 608]"),
    "a number for a backbone's list": (
        lambda d: d["models"]["deeplabv3"]["recipes"]["optic-disc"]["Arch"]["backbone"].update(multi_grid=4),
        "models.deeplabv3.recipes.optic-disc.Arch.backbone.multi_grid: ResNet50_vd's multi_grid: expected a list "
        "(or null), got 4"),
    "a misspelt operator": (
        lambda d: d["tasks"]["detection"]["recipe"]["Train"]["sample_transforms"].update(RandomFlipp={}),
        "tasks.detection.recipe.Train.sample_transforms.RandomFlipp: unknown operator 'RandomFlipp' "
        "(did you mean RandomFlip"),
    "a size the model cannot take": (
        lambda d: d["models"]["vgg16"]["recipes"]["imagenet"]["Global"].update(image_size=96),
        "models.vgg16.recipes.imagenet.Global.image_size: vgg16 takes inputs of 224..255 px (its classifier is "
        "fully connected over 7x7x512 feature maps"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_a_mutated_recipe_is_refused_on_load_naming_file_line_and_key(write_matrix, mutation):
    change, expected = MUTATIONS[mutation]
    path = write_matrix(change)
    with pytest.raises(MatrixError) as info:
        matrix.load(path)
    assert expected in str(info.value)
    line = next(line for line in str(info.value).splitlines() if expected in line)
    assert line.strip().startswith(f"{path}:")


def test_invoke_list_refuses_it_with_no_traceback(write_matrix, invoke):
    path = write_matrix(MUTATIONS["a wrong type"][0])
    result = invoke("list", env={"KUNLUN_MATRIX": str(path)})
    assert result.returncode == 2
    message = " ".join(result.stderr.split())     # the console wraps long lines
    assert "Optimizer.momentum: expected a number in 0..1, got 'high'" in message
    assert "Traceback" not in result.stderr


@pytest.fixture
def resnet50_image_recipe(matrix, tmp_path, monkeypatch):
    path = tmp_path / "recipe.json"
    path.write_bytes(kinds.recipe_json(matrix, "resnet50"))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    monkeypatch.setenv("KUNLUN_MODEL", "resnet50")
    return json.loads(path.read_text())


@pytest.mark.parametrize("override, expected", [
    ("Global.epoch=3", "unknown recipe key 'Global.epoch'"),
    ("Optimizer.momentum=high", "Optimizer.momentum: expected a number in 0..1, got 'high'"),
    ("DataLoader.batch_size=-2", "DataLoader.batch_size: expected an integer >= 1, got -2"),
    ("Optimizer.lr.learning_rate=[0.1]", "Optimizer.lr.learning_rate: expected a number >= 0, got [0.1]"),
    ("Optimizer.name=Adagrad", "Optimizer.name: expected one of Momentum, SGD, Adam, AdamW, got 'Adagrad'"),
])
def test_the_image_refuses_the_same_mistakes_in_overrides(resnet50_image_recipe, override, expected):
    with pytest.raises(TrainError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        cli.prepare(["-o", override, "--threads", "1"])


@pytest.mark.parametrize("model, size, fits", [
    ("vgg16", 96, False), ("vgg16", 224, True), ("vgg19", 256, False), ("vgg19", 255, True),
    ("hrnet", 48, False), ("hrnet", 64, True), ("resnet50", 40, True), ("mobilenetv3", 32, True),
    ("yolov3-mobilenetv1", 80, False), ("yolov3-darknet53", 96, True), ("unet", 50, True), ("deeplabv3", 40, True)])
def test_each_model_takes_only_the_sizes_its_architecture_can(matrix, tmp_path, monkeypatch, model, size, fits):
    """Checked before Paddle starts, with the limits matrix.yaml records per model (measured: VGG's
    first fully connected layer fails at 223 and 256, HRNet's branch sums at 40, 48, 56, 72, YOLOv3's
    head concatenation at 80; UNet and DeepLabV3+ resize to their input and take 40 or 50)."""
    path = tmp_path / "recipe.json"
    path.write_bytes(kinds.recipe_json(matrix, model))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    monkeypatch.setenv("KUNLUN_MODEL", model)
    argv = ["-o", f"Global.image_size={size}", "--threads", "1"]
    if fits:
        assert cli.prepare(argv)[1]["Global"]["image_size"] == size
    else:
        with pytest.raises(TrainError, match=rf"Global.image_size: {model} takes inputs of .* got {size}"):
            cli.prepare(argv)


def test_the_image_checks_operator_overrides_against_the_same_signatures(matrix, tmp_path, monkeypatch):
    path = tmp_path / "recipe.json"
    path.write_bytes(kinds.recipe_json(matrix, "yolov3-mobilenetv1"))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    with pytest.raises(TrainError, match=r"BatchRandomResize.random_size: BatchRandomResize's random_size: "
                                         r"expected true or false \(or null\), got \[1, 2\]"):
        cli.prepare(["-o", "Train.batch_transforms.BatchRandomResize.random_size=[1, 2]", "--threads", "1"])


def test_the_committed_recipes_satisfy_their_schemas(matrix):
    schema = matrix_mod_schema()
    for name, model in matrix.models.items():
        for recipe in matrix.recipes(name).values():
            assert schema.problems(recipe, model.task) == [], name
            rule = model.input_size.model_dump(exclude_none=True) if model.input_size else None
            assert schema.size_problems(recipe, rule, name) == [], name


def matrix_mod_schema():
    return matrix.recipe_schema()


def test_open_sections_pass_a_suites_constructor_arguments_through():
    """Arch is open: PaddleClas's build_model takes the model's own arguments."""
    schema = matrix.recipe_schema()
    recipe = yaml.safe_load("{Arch: {name: VGG16, class_num: 102, stop_grad_layers: 5, any_arg: 1}}")
    assert schema.problems(recipe, "classification") == []
    assert schema.problems({"Arch": {"class_num": 0}}, "classification") == [(("Arch", "class_num"), "expected an integer >= 1, got 0")]
