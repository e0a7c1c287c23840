"""Per-arch benchmark (the ARM issue), written to bench/results/arch.json: the ResNet50 chain built
cold for each arch on this host, native or under qemu-user emulation, stage by stage:

  bootstrap   mmdebstrap of the Debian base (a fresh rootfs cache, so it really runs)
  install     the Paddle and PaddleClas layers (pip installs from the hashed wheels, network off)
  model       the model layer
  first step  `docker run` -> first step line, and the steady step time (224 px, batch 2)
  size        image size per arch

Ratios (emulated / native) are taken within one run. Run from the repository root with the host
tools: `.venv/bin/python bench/arch.py [--arch x86_64,aarch64]`. Takes ~20 min on 2 cores.

`--models` instead trains every ready model's aarch64 image (already built) for one step at a small
input size, and records which train (the README's aarch64 table) and how long the step took.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kunlun_bundle import matrix  # noqa: E402
from kunlun_bundle.host import cache  # noqa: E402
from kunlun_bundle.images import build, chain  # noqa: E402

from foundation import timed_run  # noqa: E402

RESULTS = ROOT / "bench/results/arch.json"


def cold_build(m, arch) -> dict:
    """Bootstrap and build the chain with no rootfs cache and no Docker layer cache."""
    layers = chain.model_layer(m, "resnet50", "cpu", arch).ancestry()
    wheels = cache.wheels()
    with tempfile.TemporaryDirectory(prefix="kunlun-bench-") as tmp:
        # A private cache with the wheels linked in: the rootfs is bootstrapped afresh.
        os.environ["KUNLUN_CACHE"] = tmp
        (Path(tmp) / "wheels").mkdir()
        for wheel in wheels.glob("*.whl"):
            (Path(tmp) / "wheels" / wheel.name).symlink_to(wheel)
        try:
            results = build.build_layers(m, layers, ROOT, no_cache=True)
        finally:
            del os.environ["KUNLUN_CACHE"]
    seconds = {r.layer.kind: round(r.seconds, 1) for r in results.values()}
    failed = [r.layer.image for r in results.values() if r.status not in ("built", "cached")]
    if failed:
        raise SystemExit(f"build failed: {failed}")
    return {"bootstrap_and_base_s": seconds["base"], "install_paddle_s": seconds["paddle"],
            "install_suite_s": seconds["suite"], "model_layer_s": seconds["model"],
            "image_bytes": results[layers[-1].image].size}


def first_steps(m, arch, steps: int) -> dict:
    image = chain.model_layer(m, "resnet50", "cpu", arch).image
    first, summary = timed_run(["docker", "run", "--rm", "--network", "none", "--platform", arch.platform,
                                image, "--steps", str(steps)])
    return {"run_to_first_step_s": round(first, 2), "step_s": summary["mean_step_seconds"],
            "machine": summary["machine"]}


# Small inputs for one-step smoke runs (VGG's classifier needs 224 px).
SMOKE = {"classification": ["-o", "Global.image_size=64"], "detection": ["-o", "Global.image_size=64"],
         "instance-segmentation": ["-o", "Global.image_size=64"], "segmentation": ["-o", "Global.image_size=64"],
         "language-model": ["-o", "DataLoader.max_seq_len=32"], "reinforcement-learning": []}
FULL_SIZE = {"vgg16", "vgg19"}


def smoke_models(m, arch) -> dict:
    import subprocess
    out = {}
    for name in m.ready_models():
        if arch.name not in m.model_archs(name, "cpu"):
            out[name] = {"trains": False, "why": m.models[name].excluded.get(arch.name, "not in the model's archs")}
            continue
        image = chain.model_layer(m, name, "cpu", arch).image
        extra = [] if name in FULL_SIZE else SMOKE[m.models[name].task]
        start = time.monotonic()
        proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "--platform", arch.platform, image,
                               "--steps", "1", *extra], capture_output=True, text=True)
        summary = next((json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"event": "summary"')), None)
        out[name] = {"trains": proc.returncode == 0 and bool(summary and summary["loss_finite"]),
                     "run_s": round(time.monotonic() - start, 1), "args": " ".join(extra) or "defaults",
                     "machine": summary["machine"] if summary else None,
                     "error": None if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1:]}
        print(json.dumps({name: out[name]}), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="x86_64,aarch64")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--models", action="store_true", help="one-step smoke run of every model's image for --arch")
    a = p.parse_args()
    m = matrix.load(ROOT / "matrix.yaml")
    if a.models:
        [arch] = m.arch_registry.resolve(a.arch if a.arch != "x86_64,aarch64" else "aarch64")
        path = ROOT / f"bench/results/models-{arch.name}.json"
        path.write_text(json.dumps({"arch": arch.name, "date": time.strftime("%Y-%m-%d"),
                                    "models": smoke_models(m, arch)}, indent=2) + "\n")
        return
    native = m.arch_registry.native()
    results = {"machine": {"cpus": os.cpu_count(), "host_arch": native.name, "date": time.strftime("%Y-%m-%d")}}
    for arch in m.arch_registry.resolve(a.arch):
        entry = {"mode": "native" if arch == native else "emulated (qemu-user)"}
        entry.update(cold_build(m, arch))
        entry.update(first_steps(m, arch, a.steps))
        results[arch.name] = entry
        print(json.dumps({arch.name: entry}, indent=2), flush=True)
    archs = [n for n in results if n != "machine"]
    if native.name in archs and len(archs) > 1:
        base = results[native.name]
        for name in archs:
            if name != native.name:
                results[f"{name}_vs_{native.name}"] = {
                    key: round(results[name][key] / base[key], 2)
                    for key in ("bootstrap_and_base_s", "install_paddle_s", "install_suite_s", "model_layer_s",
                                "run_to_first_step_s", "step_s", "image_bytes") if base[key]}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
