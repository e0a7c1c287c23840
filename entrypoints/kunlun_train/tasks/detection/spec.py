"""Object detection (YOLOv3, VOC) and instance segmentation (Mask R-CNN, COCO), Paddle-free: their
Specs and the recipe's operators as PaddleDetection's reader lists them. The readers are
datasets/voc.py and datasets/coco.py."""
from __future__ import annotations

from ...errors import TrainError
from ...recipe import operators
from ..contract import Spec

SPECS = {
    "detection": Spec(
        "detection", "YOLOv3",
        "a VOC directory (roadsign style): train.txt (and valid.txt for evaluation) with "
        "'<image> <annotation.xml>' lines, label_list.txt (one class per line), annotations/*.xml, images/",
        {"DataLoader": {"train_list": "train.txt", "val_list": "valid.txt", "label_list": "label_list.txt"}}, data_check="voc", examples=(
            "  docker run --rm kunlun/{model}                       # smoke: 10 steps on synthetic images\n"
            "  docker run --rm -v $PWD/roadsign_voc:/data:ro -v $PWD/out:/output kunlun/{model} \\\n"
            "      --data /data --output /output --epochs 40 --pretrained /data/yolov3_coco.pdparams\n"
            "  docker run --rm -v ... kunlun/{model} eval --data /data --weights /output/best   # VOC mAP@0.5 on valid.txt\n"
            "  docker run --rm -v ... kunlun/{model} export --weights /output/best --to /output/inference\n"
            "  docker run --rm -v ... kunlun/{model} predict --model /output/inference --input /data/images --threshold 0.3\n"
            "  invoke run {model} --data D --output O -- --epochs 40   (mounts filled in for you)\n"
            "`docker run kunlun/{model} COMMAND --help` explains a command.")),
    "instance-segmentation": Spec(
        "detection", "MaskRCNN",
        "a COCO directory: annotations/instances_train.json (images, annotations with bbox and polygon "
        "segmentation, categories) with the images under train/, and for evaluation "
        "annotations/instances_val.json with its images under val/",
        {"DataLoader": {"annotations": "annotations/instances_train.json", "image_dir": "train",
                        "val_annotations": "annotations/instances_val.json", "val_image_dir": "val"}}, data_check="coco", examples=(
            "  docker run --rm kunlun/{model}                       # smoke: 10 steps on synthetic images\n"
            "  docker run --rm -v $PWD/coco:/data:ro -v $PWD/out:/output kunlun/{model} \\\n"
            "      --data /data --output /output --epochs 12 -o DataLoader.image_dir=train2017 \\\n"
            "      -o DataLoader.val_image_dir=val2017 -o DataLoader.val_annotations=annotations/instances_val2017.json\n"
            "  docker run --rm -v ... kunlun/{model} eval --data /data --weights /output/best   # COCO bbox and segm AP\n"
            "  docker run --rm -v ... kunlun/{model} export --weights /output/best --to /output/inference\n"
            "  docker run --rm -v ... kunlun/{model} predict --model /output/inference --input /data/val --masks /output/masks\n"
            "  invoke run {model} --data D --output O -- --epochs 12   (mounts filled in for you)\n"
            "`docker run kunlun/{model} COMMAND --help` explains a command.")),}

# The operators whose size a recipe may leave to Global.image_size, and the form each takes it in.
SIZED = {"Resize": lambda s: [s, s], "BatchRandomResize": lambda s: [s], "RandomResize": lambda s: [[s, s]]}


def transform_specs(section, size: int | None, what: str) -> list[dict]:
    """The recipe's operators as PaddleDetection's reader lists them ([{Name: {args}}, ...]), in the
    recipe's order. The section maps names to arguments, so `-o Train.sample_transforms.RandomFlip.prob=0`
    reaches one; null switches one off. Resize / BatchRandomResize / RandomResize without a
    target_size take Global.image_size."""
    specs = []
    for name, kwargs in operators(section, what, "PaddleDetection", "operator",
                                  "{Decode: {}, Resize: {target_size: [608, 608], keep_ratio: false}}"):
        if name in SIZED and kwargs.get("target_size") is None:
            if not size:
                raise TrainError(f"{what}.{name}: no target_size and no Global.image_size")
            kwargs["target_size"] = SIZED[name](int(size))
        specs.append({name: kwargs})
    return specs
