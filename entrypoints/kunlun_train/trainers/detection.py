"""Object detection (YOLOv3, task `detection`, VOC datasets) and instance segmentation (Mask R-CNN,
task `instance-segmentation`, COCO datasets) with PaddleDetection's models.

PyPI paddledet ships no configs: the architectures come from the YAML files in
kunlun_train/configs/paddledet/ (Arch.config), loaded with ppdet's own load_config + create. Its data
pipeline is built for its Trainer/DataLoader, so the input preparation is ours and follows the
reference readers: square resize, ImageNet normalisation, YOLO targets from ppdet's Gt2YoloTarget
(boxes padded to 50), per-image box/class/polygon lists for Mask R-CNN. The loss is the model's own."""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import paddle

from .. import parallel
from ..datasets import coco, voc
from ..errors import TrainError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "paddledet"
MEAN = np.array([0.485, 0.456, 0.406], dtype="float32").reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype="float32").reshape(3, 1, 1)
MAX_BOXES = 50                       # PadBox(num_max_boxes=50) in PaddleDetection's YOLOv3 readers
ARCHITECTURES = {"detection": "YOLOv3", "instance-segmentation": "MaskRCNN"}

# Printed by `import ppdet` for optional packages it never needs here (tracking, MOT metrics).
_IMPORT_NOISE = ("Warning: Unable to use",)


def import_ppdet():
    """`import ppdet` imports every submodule; some print notices about optional extras."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        import ppdet  # noqa: F401
        from ppdet.core import workspace
    for line in (out.getvalue() + err.getvalue()).splitlines():
        if line.strip() and not line.startswith(_IMPORT_NOISE):
            print(line, file=sys.stderr)
    return workspace


def config_path(name: str) -> Path:
    path = CONFIGS / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CONFIGS.glob("*.yml")))
        raise TrainError(f"Arch.config={name!r}: no such config in this image (known: {known})")
    return path


class Trainer:
    unit = "images/s"

    def __init__(self, recipe: dict, data: str | None, world: parallel.World = parallel.World()):
        self.recipe = recipe
        g, arch, loader = recipe["Global"], recipe["Arch"], recipe["DataLoader"]
        self.task = recipe.get("Bundle", {}).get("task", "detection")
        if self.task not in ARCHITECTURES:
            raise TrainError(f"task {self.task!r}: this trainer serves {', '.join(ARCHITECTURES)}")
        self.size, self.batch = int(g["image_size"]), int(loader["batch_size"])
        if self.size < 64 or self.size % 32:
            raise TrainError(f"Global.image_size={self.size}: must be a multiple of 32, at least 64 "
                             "(the models downsample by 32)")
        config = config_path(str(arch["config"]))
        opt = recipe["Optimizer"]
        if opt.get("name", "Momentum") != "Momentum":
            raise TrainError(f"Optimizer.name={opt['name']!r}: only Momentum is supported")
        self.rng = np.random.default_rng(world.seed(int(g.get("seed", 0))))

        # The dataset first: a bad layout fails in a second, before the suite is imported.
        self.dataset, self.samples = None, None
        self.classes = int(arch["num_classes"])
        if data:
            if self.task == "detection":
                self.dataset = voc.voc_dataset(data, loader["train_list"], loader["label_list"])
            else:
                self.dataset = coco.coco_dataset(data, loader["annotations"], loader["image_dir"])
            self.classes = len(self.dataset.classes)   # the dataset's classes decide
            self.samples = world.shard(self.dataset.samples)
        if self.classes < 1:
            raise TrainError(f"Arch.num_classes={self.classes}: must be at least 1")

        workspace = import_ppdet()
        cfg = workspace.load_config(str(config))
        workspace.merge_config({"num_classes": self.classes})
        self.architecture = cfg.architecture
        if self.architecture != ARCHITECTURES[self.task]:
            raise TrainError(f"Arch.config={config.name!r} builds {self.architecture}; task {self.task} "
                             f"needs a {ARCHITECTURES[self.task]} config")
        paddle.seed(int(g.get("seed", 0)))   # the same initial weights on every rank
        self.model = parallel.wrap(workspace.create(cfg.architecture), world)
        if self.architecture == "YOLOv3":
            from ppdet.data.transform.batch_operators import Gt2YoloTarget
            head = cfg["YOLOv3Head"]
            self.yolo_targets = Gt2YoloTarget(anchors=head["anchors"], anchor_masks=head["anchor_masks"],
                                              downsample_ratios=cfg["YOLOv3Loss"]["downsample"],
                                              num_classes=self.classes)
        self.optimizer = paddle.optimizer.Momentum(
            learning_rate=float(opt["learning_rate"]), momentum=float(opt["momentum"]),
            parameters=self.model.parameters(),
            weight_decay=paddle.regularizer.L2Decay(float(opt.get("weight_decay", 0.0))))
        self._order: list[int] = []

    def describe_data(self) -> str:
        return self.dataset.describe() if self.dataset else "synthetic"

    def samples_per_step(self) -> int:
        return self.batch

    # ---- one image: (normalised CHW image, boxes [n, 4] xyxy in input pixels, classes [n], polygons,
    #      scale factor [y, x] from the original image to the input)

    def _decode(self, image: Path, where: str) -> tuple[np.ndarray, float, float]:
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(image) as img:
                w, h = img.size
                img = img.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        except (OSError, UnidentifiedImageError) as exc:
            raise TrainError(f"{where}: cannot read image {image}: {exc}") from None
        chw = np.asarray(img, dtype="float32").transpose(2, 0, 1) / 255.0
        return (chw - MEAN) / STD, self.size / w, self.size / h

    def _real(self, sample):
        if isinstance(sample, voc.Sample):
            image, sx, sy = self._decode(sample.image, f"{self.dataset.list_file}:{sample.line}")
            boxes = np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in sample.boxes], "float32").reshape(-1, 4)
            classes = np.array([b.label for b in sample.boxes], "int32")
            polygons = []
        else:
            image, sx, sy = self._decode(sample.image, f"{self.dataset.annotations}: image id {sample.id}")
            boxes = np.array([i.bbox for i in sample.instances], "float32").reshape(-1, 4)
            classes = np.array([i.label for i in sample.instances], "int32")
            polygons = [[np.array(p, "float32") * np.tile([sx, sy], len(p) // 2).astype("float32")
                         for p in i.polygons] for i in sample.instances]
        boxes *= np.array([sx, sy, sx, sy], "float32")
        return image, boxes, classes, polygons, (sy, sx)

    def _synthetic(self):
        """Noise with 1-4 random objects (an octagon inside each box for the masks)."""
        image = self.rng.standard_normal((3, self.size, self.size), dtype="float32")
        n = int(self.rng.integers(1, 5))
        wh = self.rng.uniform(0.1, 0.6, (n, 2)) * self.size
        xy = self.rng.uniform(0, 1, (n, 2)) * (self.size - wh)
        boxes = np.concatenate([xy, xy + wh], axis=1).astype("float32")
        classes = self.rng.integers(0, self.classes, n).astype("int32")
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        polygons = []
        for x1, y1, x2, y2 in boxes:
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            polygons.append([np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], 1)
                             .reshape(-1).astype("float32")])
        return image, boxes, classes, polygons, (1.0, 1.0)

    def _next(self):
        if self.samples is None:
            return self._synthetic()
        if not self._order:   # a new epoch: reshuffle
            self._order = list(self.rng.permutation(len(self.samples)))
        return self._real(self.samples[self._order.pop()])

    # ---- a batch in the layout the architecture's forward() reads

    def inputs(self) -> dict:
        items = [self._next() for _ in range(self.batch)]
        size = float(self.size)
        images = np.stack([i[0] for i in items])
        common = {"image": paddle.to_tensor(images),
                  "im_shape": paddle.to_tensor(np.full((self.batch, 2), size, "float32")),
                  "scale_factor": paddle.to_tensor(np.array([i[4] for i in items], "float32"))}
        if self.architecture == "YOLOv3":
            return {**common, **self._yolo_targets(items)}
        return {**common,
                "gt_bbox": [paddle.to_tensor(i[1]) for i in items],
                "gt_class": [paddle.to_tensor(i[2].reshape(-1, 1)) for i in items],
                "gt_poly": [i[3] for i in items]}

    def _yolo_targets(self, items) -> dict:
        """NormalizeBox, PadBox(50), BboxXYXY2XYWH, then ppdet's Gt2YoloTarget, as its YOLOv3 reader."""
        samples = []
        for image, boxes, classes, *_ in items:
            boxes, classes = boxes[:MAX_BOXES] / self.size, classes[:MAX_BOXES]
            xywh = np.zeros((MAX_BOXES, 4), "float32")
            xywh[:len(boxes), :2] = (boxes[:, :2] + boxes[:, 2:]) / 2
            xywh[:len(boxes), 2:] = boxes[:, 2:] - boxes[:, :2]
            cls = np.zeros((MAX_BOXES,), "int32")
            cls[:len(classes)] = classes
            samples.append({"image": image, "gt_bbox": xywh, "gt_class": cls})
        samples = self.yolo_targets(samples)
        batch = {"gt_bbox": paddle.to_tensor(np.stack([s["gt_bbox"] for s in samples]))}
        for i in range(len(self.yolo_targets.anchor_masks)):
            batch[f"target{i}"] = paddle.to_tensor(np.stack([s[f"target{i}"] for s in samples]))
        return batch

    def step(self) -> float:
        inputs = self.inputs()
        self.model.train()
        loss = self.model(inputs)["loss"]
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        return float(loss)

    def save(self, directory) -> None:
        paddle.save(self.model.state_dict(), str(directory / "model.pdparams"))
        paddle.save(self.optimizer.state_dict(), str(directory / "model.pdopt"))

    def load(self, directory) -> None:
        self.model.set_state_dict(paddle.load(str(directory / "model.pdparams")))
        self.optimizer.set_state_dict(paddle.load(str(directory / "model.pdopt")))
