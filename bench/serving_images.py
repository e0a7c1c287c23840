"""Serving images (`invoke package`) against training images, per model: the image sizes, what each
layer adds, and what dominates the serving layer. Writes results/serving-images.json; README.md
("Serving images") has the table.

For each model: its training image is built (`invoke build`), trained 1 step of its smoke recipe on
synthetic data and exported (the size does not depend on the weights' values, only on the architecture), the export is
packaged (`invoke package`), and then, from `docker image inspect` (uncompressed sizes, as `docker
images` shows them): the training image, the serving image, their shared framework layer (Paddle and
the server) and base, and the largest directories of the serving layer's suite directory (`du` in the
image).

Run from the repository root (it builds what is missing; cold, that is minutes per suite):
  .venv/bin/python bench/serving_images.py [--arch x86_64] [MODEL ...]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kunlun_bundle import layout, matrix, naming  # noqa: E402

RESULTS = ROOT / "bench/results/serving-images.json"
MODELS = ["resnet50", "mobilenetv3", "yolov3-mobilenetv1", "mask-rcnn", "unet"]


def invoke(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"invoke {' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def size(tag: str) -> int:
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True, check=True)
    return int(out.stdout)


def largest(tag: str, directory: str, count: int = 6) -> list[tuple[str, int]]:
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c",
                          f"du -sk {directory}/* | sort -n | tail -{count}"], capture_output=True, text=True, check=True)
    return [(Path(path).name, int(kb) * 1024) for kb, path in (line.split("\t") for line in out.stdout.splitlines())][::-1]


def measure(m, model: str, arch: str) -> dict:
    spec = m.models[model]
    flavour = naming.default_flavour(m)
    invoke("build", "--model", model, "--arch", arch)
    with tempfile.TemporaryDirectory(prefix="serving-images-") as tmp:
        out = Path(tmp) / "out"
        invoke("run", model, "--arch", arch, "--output", str(out), "--", "--steps", "1",   # the smoke recipe
               "--export", "/output/inference")
        packaged = invoke("package", model, "--export", str(out / "inference"), "--arch", arch)
        [tag] = re.findall(r"docker run --rm -p 8000:8000 (\S+)", packaged.stderr)
        export_bytes = sum(p.stat().st_size for p in (out / "inference").rglob("*") if p.is_file())
    training = naming.model_image(m, model, flavour, arch)
    framework = naming.paddle_image(m, flavour, arch)
    suite = naming.suite_image(m, spec.suite, flavour, arch)
    serving = naming.serving_image(m, spec.suite, flavour, arch)
    sizes = {"training": size(training), "serving": size(tag), "framework": size(framework),
             "base": size(naming.base_image(m, m.flavours[flavour].base, arch)),
             "suite_layer": size(suite) - size(framework), "serving_layer": size(serving) - size(framework),
             "export": export_bytes}
    return {"model": model, "suite": spec.suite, "arch": arch, "training_image": training, "serving_image": tag,
            "bytes": sizes, "serving_ratio": round(sizes["serving"] / sizes["training"], 3),
            "serving_layer_largest": largest(serving, layout.suite_dir(spec.suite)),
            "suite_layer_largest": largest(suite, layout.suite_dir(spec.suite)),
            "framework_largest": largest(framework, f"{layout.VENV}/lib/python3.11/site-packages")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=MODELS)
    p.add_argument("--arch", default="x86_64")
    args = p.parse_args()
    m = matrix.load(ROOT / "matrix.yaml")
    rows = []
    for model in args.models:
        row = measure(m, model, args.arch)
        rows.append(row)
        b = row["bytes"]
        print(f"{model:20s} training {b['training'] / 1e6:7.0f} MB  serving {b['serving'] / 1e6:7.0f} MB "
              f"({row['serving_ratio']:.2f})  suite layer {b['suite_layer'] / 1e6:5.0f} MB  serving layer "
              f"{b['serving_layer'] / 1e6:5.0f} MB  export {b['export'] / 1e6:5.1f} MB", flush=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": []}
    keep = [r for r in previous["rows"] if (r["model"], r["arch"]) not in {(r2["model"], r2["arch"]) for r2 in rows}]
    RESULTS.write_text(json.dumps({"rows": keep + rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
