"""Pascal VOC detection datasets (PaddleDetection's roadsign / VOC layout):

    label_list.txt            one class name per line; a class's index is its line's order
    train.txt                 `<image path> <annotation path>` per line, relative to the dataset root
    annotations/road0.xml     <annotation><size><width/><height/></size><object><name/>
                              <bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>...</annotation>
    images/road0.png

Every list line, image and XML file is checked before training; errors name file:line (for XML, the
line of the offending element)."""
from __future__ import annotations

import functools
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TrainError
from . import data_root, lines, required_file, two_columns

LIST_EXAMPLE = "'images/road0.png annotations/road0.xml'"


@dataclass(frozen=True)
class Box:
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: int          # index into the label list
    difficult: bool = False


@dataclass(frozen=True)
class Sample:
    image: Path
    annotation: Path
    width: int
    height: int
    boxes: tuple[Box, ...]
    line: int           # line of the list file it came from


@dataclass
class VOCDataset:
    classes: list[str]
    samples: list[Sample]
    list_file: Path = field(default=None)

    def describe(self) -> str:
        boxes = sum(len(s.boxes) for s in self.samples)
        return (f"{len(self.samples)} images, {boxes} boxes, {len(self.classes)} classes "
                f"from a VOC list file")


# ---- a small XML tree with line numbers (ElementTree drops them) ----

@dataclass
class Node:
    tag: str
    line: int
    children: list["Node"] = field(default_factory=list)
    text: str = ""

    def find(self, tag: str) -> "Node | None":
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list["Node"]:
        return [c for c in self.children if c.tag == tag]


def parse_xml(path: Path) -> Node:
    """The document's root element; malformed XML is a TrainError naming file:line."""
    parser = xml.parsers.expat.ParserCreate()
    stack: list[Node] = []
    root: list[Node] = []

    def start(tag, _attrs):
        node = Node(tag, parser.CurrentLineNumber)
        (stack[-1].children if stack else root).append(node)
        stack.append(node)

    def end(_tag):
        stack.pop()

    def text(data):
        if stack:
            stack[-1].text += data

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    try:
        parser.Parse(path.read_bytes(), True)
    except xml.parsers.expat.ExpatError as exc:
        raise TrainError(f"{path}:{exc.lineno}: not valid XML: {xml.parsers.expat.ErrorString(exc.code)}") from None
    except OSError as exc:
        raise TrainError(f"{path}: cannot read: {exc.strerror}") from None
    return root[0]


def _number(path: Path, parent: Node, tag: str, what: str) -> float:
    node = parent.find(tag)
    if node is None:
        raise TrainError(f"{path}:{parent.line}: {what}: <{parent.tag}> has no <{tag}>")
    try:
        return float(node.text.strip())
    except ValueError:
        raise TrainError(f"{path}:{node.line}: {what}: <{tag}> is {node.text.strip()!r}, not a number") from None


def read_annotation(path: Path, classes: dict[str, int], label_list: Path) -> tuple[int, int, tuple[Box, ...]]:
    """(width, height, boxes) of one VOC XML file; boxes are clipped to the image."""
    root = parse_xml(path)
    if root.tag != "annotation":
        raise TrainError(f"{path}:{root.line}: expected a VOC <annotation> document, found <{root.tag}>")
    size = root.find("size")
    if size is None:
        raise TrainError(f"{path}:{root.line}: <annotation> has no <size> (image <width> and <height>)")
    width, height = (_number(path, size, t, "image size") for t in ("width", "height"))
    if width <= 0 or height <= 0 or width != int(width) or height != int(height):
        raise TrainError(f"{path}:{size.line}: image size {width:g}x{height:g}: expected positive whole pixels")
    boxes = []
    for n, obj in enumerate(root.findall("object"), 1):
        what = f"object {n}"
        name = obj.find("name")
        if name is None or not name.text.strip():
            raise TrainError(f"{path}:{obj.line}: {what} has no <name>")
        label = name.text.strip()
        if label not in classes:
            raise TrainError(f"{path}:{name.line}: {what}: class {label!r} is not in {label_list.name} "
                             f"(known: {', '.join(classes)})")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise TrainError(f"{path}:{obj.line}: {what} ({label}) has no <bndbox>")
        x1, y1, x2, y2 = (_number(path, bndbox, t, what) for t in ("xmin", "ymin", "xmax", "ymax"))
        x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(width, x2), min(height, y2)
        if x2 <= x1 or y2 <= y1:
            raise TrainError(f"{path}:{bndbox.line}: {what} ({label}): empty box after clipping to the "
                             f"{width:g}x{height:g} image: xmin {x1:g} ymin {y1:g} xmax {x2:g} ymax {y2:g}")
        difficult = obj.find("difficult")
        boxes.append(Box(x1, y1, x2, y2, classes[label],
                         difficult is not None and difficult.text.strip() not in ("", "0")))
    return int(width), int(height), tuple(boxes)


def read_label_list(root: Path, name: str) -> tuple[Path, list[str]]:
    path = required_file(root, name, "a VOC dataset needs a label list: one class name per line "
                                     "(e.g. speedlimit, crosswalk, trafficlight, stop)")
    classes: list[str] = []
    for n, line in lines(path):
        if line in classes:
            raise TrainError(f"{path}:{n}: class {line!r} is listed twice (first on another line)")
        classes.append(line)
    if not classes:
        raise TrainError(f"{path}: no class names; expected one class name per line")
    return path, classes


def check(recipe: dict, root: str | Path, command: str = "train") -> None:
    """The lists a command reads, parsed before Paddle is imported (every annotation and image checked):
    training reads the training list and, when present, the validation list; eval needs the latter."""
    loader = recipe["DataLoader"]
    val = loader.get("val_list")
    if command == "eval":
        voc_dataset(root, val or "valid.txt", loader["label_list"])
        return
    voc_dataset(root, loader["train_list"], loader["label_list"])
    if val and (data_root(root) / val).is_file():
        voc_dataset(root, val, loader["label_list"])


@functools.lru_cache(maxsize=8)   # the check before Paddle and the task read the same lists: parse once
def voc_dataset(root: str | Path, list_file: str = "train.txt", label_list: str = "label_list.txt") -> VOCDataset:
    """Parse the label list, the list file and every annotation it names, checking each image exists."""
    root = data_root(root)
    labels_path, classes = read_label_list(root, label_list)
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for n, image, annotation in two_columns(root, list_file, "VOC", "annotation path", LIST_EXAMPLE,
                                            second_file="annotation"):
        width, height, boxes = read_annotation(annotation, index, labels_path)
        samples.append(Sample(image, annotation, width, height, boxes, n))
    path = root / list_file
    return VOCDataset(classes, samples, path)
