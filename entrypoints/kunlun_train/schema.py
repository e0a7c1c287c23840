"""What a recipe may say: every task's keys, their types and ranges, and how recipes merge. One
schema, read in two places:
the host checks matrix.yaml's recipes with it (`invoke list`, `render`, `build`: file:line and the key),
and the image checks `-o` overrides with it before Paddle is imported. So a typo or a wrong type fails
where it is written, not an hour into a run.

Standalone on purpose (standard library only, no package imports): kunlun_bundle loads this file
by path, and the images have no pydantic."""
from __future__ import annotations

import copy
import difflib
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The suites' operator signatures, read from their locked wheels (kunlun_bundle/images/signatures.py).
SIGNATURES = Path(__file__).resolve().parent / "configs" / "signatures.json"


@dataclass(frozen=True)
class Key:
    kind: str                          # int, float (an int is a float too), bool, str, list, dict, any
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    items: str | None = None           # the kind of a list's items
    length: int | None = None          # a list's exact length
    null: bool = False                 # None allowed ("not set")
    also: tuple = ()                   # other literal values allowed, e.g. "auto"

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.null else f"expected {self.describe()}, got null"
        if value in self.also and not isinstance(value, bool):
            return None
        if not _is(value, self.kind):
            return f"expected {self.describe()}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.kind in ("int", "float"):
            if self.min is not None and value < self.min or self.max is not None and value > self.max:
                return f"expected {self.describe()}, got {value!r}"
        if self.kind == "list":
            if self.length is not None and len(value) != self.length:
                return f"expected {self.describe()}, got {len(value)} items"
            bad = [v for v in value if self.items and not _is(v, self.items)]
            if bad:
                return f"expected {self.describe()}, got {bad[0]!r} in the list"
        return None

    def describe(self) -> str:
        names = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                 "list": "a list", "dict": "a mapping", "any": "a value"}
        text = names[self.kind]
        if self.kind == "list" and self.items:
            text = f"a list of {names[self.items].split(' ', 1)[-1]}s" if self.items != "any" else text
            text += f" of {self.length}" if self.length is not None else ""
        if self.min is not None and self.max is not None:
            text += f" in {self.min:g}..{self.max:g}"
        elif self.min is not None:
            text += f" >= {self.min:g}"
        elif self.max is not None:
            text += f" <= {self.max:g}"
        if self.also:
            text += " or " + " or ".join(repr(a) for a in self.also)
        return text + (" (or null)" if self.null else "")


@dataclass(frozen=True)
class Either(Key):
    """One of several forms, e.g. a square size (64) or width and height ([1024, 512])."""
    forms: tuple = ()

    def problem(self, value: Any) -> str | None:
        if any(form.problem(value) is None for form in self.forms):
            return None
        return f"expected {' or '.join(form.describe() for form in self.forms)}, got {value!r}"


def _is(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if isinstance(value, bool):
        return kind == "bool"
    return isinstance(value, {"int": int, "float": (int, float), "bool": bool, "str": str, "list": list,
                              "dict": dict}[kind])


@dataclass(frozen=True)
class Section:
    keys: dict[str, Key] = field(default_factory=dict)
    sections: dict[str, "Section"] = field(default_factory=dict)
    open: bool = False                 # other keys allowed too (passed on to a suite's constructor)


@dataclass(frozen=True)
class Operators(Section):
    """A section of a suite's operators by name, {Name: {arguments}} (recipe.operators): each name and
    each argument against the operator's signature in the suite's wheel. null, false or true for the
    arguments switch an operator off or take its defaults."""
    catalog: str = ""                  # "<suite>/<catalog>" in configs/signatures.json


@dataclass(frozen=True)
class Built(Section):
    """A section naming what it builds (`name`) with that constructor's arguments beside it (PaddleSeg's
    Arch, Arch.backbone, Loss): the arguments not described by `keys`/`sections` are checked against
    the named class's signature."""
    catalog: str = ""


def section(open: bool = False, **entries) -> Section:
    return Section({k: v for k, v in entries.items() if isinstance(v, Key)},
                   {k: v for k, v in entries.items() if isinstance(v, Section)}, open)


POSITIVE = Key("int", min=1)
RATE = Key("float", min=0)

# --- shared by every task ------------------------------------------------------------------------
LR = section(
    name=Key("str", choices=("Constant", "Piecewise", "Cosine", "Polynomial", "Linear")),
    learning_rate=RATE, reference_batch=Key("int", min=1, null=True),
    decay_epochs=Key("list", items="float"), decay_steps=Key("list", items="int"),
    values=Key("list", items="float"), gamma=Key("float", min=0, max=1),
    warmup_epoch=Key("float", min=0), warmup_steps=Key("int", min=0), warmup_proportion=Key("float", min=0, max=1),
    warmup_start_lr=RATE, warmup_start_factor=Key("float", min=0, max=1),
    power=Key("float", min=0), end_lr=RATE)
OPTIMIZER = section(
    name=Key("str", choices=("Momentum", "SGD", "Adam", "AdamW")), momentum=Key("float", min=0, max=1),
    nesterov=Key("bool"), weight_decay=RATE, beta1=Key("float", min=0, max=1), beta2=Key("float", min=0, max=1),
    epsilon=Key("float", min=0), clip_norm=Key("float", min=0, null=True), no_decay=Key("list", items="str"), lr=LR)
GLOBAL = dict(steps=Key("int", min=1, null=True), epochs=Key("float", min=0, null=True), iters=Key("int", min=1, null=True),
              seed=Key("int", min=0), eval_interval=Key("float", min=0, null=True),
              device=Key("str", choices=("cpu", "xpu")), threads=POSITIVE)
# device and threads: runtime facts (options.RunOptions), no longer written into the recipe; still accepted,
# as before read by nothing, so the recipes of checkpoints written with them load as they did.
DATALOADER = dict(batch_size=POSITIVE, eval_batch_size=Key("int", min=1, null=True),
                  workers=Key("int", min=0, also=("auto",)))


def common(**sections) -> Section:
    """A task's schema: the shared sections plus its own; Bundle is written by the build."""
    return section(Bundle=section(open=True), Optimizer=OPTIMIZER, **sections)


SIZE = Either("any", forms=(Key("int", min=32), Key("list", items="int", length=2)))


def operators(catalog: str) -> Operators:
    return Operators(catalog=catalog)


def built(catalog: str, **entries) -> Built:
    plain = section(**entries)
    return Built(plain.keys, plain.sections, catalog=catalog)


DET_OPS = operators("paddledet/operators")
SEG_TRANSFORMS = operators("paddleseg/transforms")

SCHEMAS: dict[str, Section] = {
    "classification": common(
        Global=section(**GLOBAL, image_size=Key("int", min=32), synthetic_samples=POSITIVE),
        Arch=section(open=True, name=Key("str"), class_num=POSITIVE, stop_grad_layers=Key("int", min=0, max=5)),
        Loss=section(label_smoothing=Key("float", min=0, max=1)),
        DataLoader=section(**DATALOADER, train_list=Key("str"), val_list=Key("str", null=True)),
        Train=section(crop_scale=Key("list", items="float", length=2), crop_ratio=Key("list", items="float", length=2),
                      flip=Key("bool")),
        Eval=section(crop_ratio=Key("float", min=0.01, max=1)),
        Normalize=section(mean=Key("list", items="float", length=3), std=Key("list", items="float", length=3)),
        Metric=section(topk=Key("list", items="int"))),
    "segmentation": common(
        Global=section(**GLOBAL, image_size=SIZE, synthetic_samples=POSITIVE, eval_every=Key("int", min=1, null=True)),
        # PaddleSeg's constructors take the rest of Arch, Arch.backbone and Loss: checked against the wheel's
        Arch=built("paddleseg/models", name=Key("str"), num_classes=Key("int", min=1, max=254),
                   backbone=built("paddleseg/backbones", name=Key("str"))),
        Loss=built("paddleseg/losses", name=Key("str"), coef=Key("list", items="float")),
        DataLoader=section(**DATALOADER, train_list=Key("str"), val_list=Key("str", null=True)),
        Train=section(transforms=SEG_TRANSFORMS),
        Eval=section(transforms=SEG_TRANSFORMS),
        Normalize=section(mean=Key("list", items="float", length=3), std=Key("list", items="float", length=3))),
    "detection": common(
        Global=section(**GLOBAL, image_size=Key("int", min=32, null=True), synthetic_samples=POSITIVE,
                       eval_every=Key("int", min=1, null=True)),
        Arch=section(config=Key("str"), num_classes=POSITIVE),
        DataLoader=section(**DATALOADER, train_list=Key("str"), val_list=Key("str", null=True), label_list=Key("str")),
        # ppdet.data.transform operators by name, their arguments checked against the wheel's signatures
        Train=section(sample_transforms=DET_OPS, batch_transforms=DET_OPS),
        Eval=section(sample_transforms=DET_OPS, batch_transforms=DET_OPS),
        Metric=section(map_type=Key("str", choices=("11point", "integral")),
                       overlap_thresh=Key("float", min=0, max=1))),
    "instance-segmentation": common(
        Global=section(**GLOBAL, image_size=Key("int", min=32, null=True), synthetic_samples=POSITIVE,
                       eval_every=Key("int", min=1, null=True)),
        Arch=section(config=Key("str"), num_classes=POSITIVE),
        DataLoader=section(**DATALOADER, annotations=Key("str"), image_dir=Key("str"),
                           val_annotations=Key("str", null=True), val_image_dir=Key("str", null=True)),
        Train=section(sample_transforms=DET_OPS, batch_transforms=DET_OPS),
        Eval=section(sample_transforms=DET_OPS, batch_transforms=DET_OPS)),
    "language-model": common(
        Global=section(**GLOBAL, synthetic_samples=POSITIVE, objective=Key("str", choices=("classification", "pretraining"))),
        Arch=section(name=Key("str", choices=("bert", "ernie")), config=Key("str"), num_classes=Key("int", min=2),
                     num_hidden_layers=Key("int", min=1, null=True), hidden_size=Key("int", min=1, null=True),
                     num_attention_heads=Key("int", min=1, null=True), intermediate_size=Key("int", min=1, null=True),
                     vocab_size=Key("int", min=8, null=True)),
        Tokenizer=section(vocab_file=Key("str", null=True), do_lower_case=Key("bool")),
        DataLoader=section(**DATALOADER, max_seq_len=Key("int", min=8, max=4096), train_file=Key("str"),
                           dev_file=Key("str", null=True)),
        Pretrain=section(mask_prob=Key("float", min=0, max=1), max_predictions=POSITIVE)),
    "reinforcement-learning": common(
        Global=section(**GLOBAL, env=Key("str"), env_steps=POSITIVE, epoch_steps=POSITIVE),
        Arch=section(name=Key("str"), hidden_size=POSITIVE),
        DataLoader=section(**DATALOADER),
        Replay=section(memory_size=POSITIVE, warmup_size=Key("int", min=0)),
        Algorithm=section(name=Key("str", choices=("DQN",)), gamma=Key("float", min=0, max=1),
                          target_update_steps=POSITIVE, e_greed=Key("float", min=0, max=1),
                          e_greed_decrement=Key("float", min=0), e_greed_min=Key("float", min=0, max=1),
                          e_greed_noise=Key("float", min=0, max=1)),
        Eval=section(env=Key("str"), episodes=POSITIVE, seed=Key("int", min=0), every_episodes=Key("int", min=0))),
}


def merge(base: dict, top: dict) -> dict:
    """`top` over `base`, section by section (nested mappings merge, everything else replaces): how a
    task's shared keys, a model's recipe, its smoke overrides and -o stack up, on the host and in the image."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) else copy.deepcopy(value)
    return out


def size_problems(recipe: dict, rule: dict | None, model: str) -> list[tuple[tuple, str]]:
    """Global.image_size against the model's own limits (matrix.yaml `models.<m>.input_size`: min,
    max, multiple and why), each side of a [width, height] size too."""
    size = recipe.get("Global", {}).get("image_size")
    if not rule or size is None or not _is(size, "int") and not _is(size, "list"):
        return []
    sides = size if isinstance(size, list) else [size]
    low, high, step = rule.get("min"), rule.get("max"), rule.get("multiple")
    if all(isinstance(s, int) and (low is None or s >= low) and (high is None or s <= high)
           and (step is None or s % step == 0) for s in sides):
        return []
    takes = [f"{low}..{high} px" if low and high else f"at least {low} px" if low else f"at most {high} px" if high else "",
             f"a multiple of {step} px" if step else ""]
    return [(("Global", "image_size"), f"{model} takes inputs of {', '.join(t for t in takes if t)} "
             f"({rule.get('why', 'its architecture')}), got {size!r}")]


def problems(recipe: dict, task: str, at: tuple = ()) -> list[tuple[tuple, str]]:
    """(key path, message) for every key the task's schema does not allow or whose value it refuses.
    A task without a schema yet is not checked."""
    schema = SCHEMAS.get(task)
    return [] if schema is None else _walk(recipe, schema, at)


@functools.lru_cache(maxsize=1)
def signatures() -> dict:
    return json.loads(SIGNATURES.read_text()) if SIGNATURES.is_file() else {}


def _signature(catalog: str, name: Any) -> tuple[dict | None, list[str]]:
    """(the operator's signature or None, the catalog's names); an unknown catalog checks nothing."""
    suite, kind = catalog.split("/")
    known = signatures().get(suite, {}).get(kind)
    if known is None:
        return {"params": {}, "open": True}, []
    return known.get(name) if isinstance(name, str) else None, sorted(known)


def _unknown(name: Any, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(str(name), known, n=3)
    return f"unknown {what} {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")


def _arguments(node: dict, signature: dict, name: str, at: tuple, skip=()) -> list[tuple[tuple, str]]:
    found = []
    for key, value in node.items():
        if key in skip:
            continue
        kind = signature["params"].get(key)
        if kind is None:
            if not signature["open"]:
                takes = ", ".join(signature["params"]) or "no arguments"
                found.append((at + (key,), f"{name} takes no argument {key!r} (it takes: {takes})"))
            continue
        message = Key(kind, null=True).problem(value)
        if message:
            found.append((at + (key,), f"{name}'s {key}: {message}"))
    return found


def _operators(node: Any, schema: Operators, at: tuple) -> list[tuple[tuple, str]]:
    if not isinstance(node, dict):
        return []   # recipe.operators says what the section should look like
    found = []
    for name, arguments in node.items():
        signature, known = _signature(schema.catalog, name)
        if signature is None:
            found.append((at + (name,), _unknown(name, known, "operator")))
        elif isinstance(arguments, dict):
            found += _arguments(arguments, signature, name, at + (name,))
    return found


def _walk(node: Any, schema: Section, at: tuple) -> list[tuple[tuple, str]]:
    if isinstance(schema, Operators):
        return _operators(node, schema, at)
    if not isinstance(node, dict):
        return [(at, f"expected a mapping of keys, got {node!r}")]
    found = []
    if isinstance(schema, Built) and "name" in node:
        signature, known = _signature(schema.catalog, node["name"])
        if signature is None:
            found.append((at + ("name",), _unknown(node["name"], known, "class")))
        else:
            found += _arguments(node, signature, node["name"], at, skip={*schema.keys, *schema.sections})
    for key, value in node.items():
        here = at + (key,)
        if isinstance(schema, Built) and key not in schema.keys and key not in schema.sections:
            continue   # checked against the signature above
        if key in schema.sections:
            found += _walk(value, schema.sections[key], here)
        elif key in schema.keys:
            message = schema.keys[key].problem(value)
            if message:
                found.append((here, message))
        elif not schema.open:
            known = sorted([*schema.keys, *schema.sections])
            found.append((here, f"unknown key (known here: {', '.join(known)})"))
    return found
