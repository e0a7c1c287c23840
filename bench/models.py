"""Per-model benchmark (the models issue), written to bench/results/models.json:

  size      each model image, and what its own layers add (suite layer shared per suite, model layer)
  build     build time of each layer, from the build log the bundle keeps in its cache
            (~/.cache/kunlun-bundle/build-log.jsonl: the last time each layer was really built)
  step      steady step time (batch 2, the recipe's own input size, 2 threads) and peak RSS in the
            container and on the host with the same locked wheels, interleaved; their ratio
  sharing   all 12 chains as if each were built alone vs the unique layers actually built

Run from the repository root: `.venv/bin/python bench/models.py [--model M ...] [--steps 3]`.
Host venvs (one per suite, from the lock files and the wheel cache) are created on first use.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kunlun_bundle import matrix  # noqa: E402
from kunlun_bundle.containers import docker_api  # noqa: E402
from kunlun_bundle.host import cache  # noqa: E402
from kunlun_bundle.images import chain, kinds, lock  # noqa: E402

from foundation import timed_run  # noqa: E402

RESULTS = ROOT / "bench/results/models.json"


def host_venv(m, layer) -> Path:
    """The model's Paddle + suite environment on the host, from the same locks and cached files."""
    suite = layer.parent
    venv = cache.root() / f"bench-venv-{suite.name}"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        for part in (suite.parent, suite):
            wheels = lock.LockFile.read(ROOT / part.lock).wheels
            reqs = venv / f"{part.kind}.txt"
            reqs.write_text("\n".join(w.line().split("  #")[0] for w in wheels) + "\n")
            subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-index", "--no-deps", "--require-hashes",
                            "--no-build-isolation", "--find-links", str(cache.wheels()), "-r", str(reqs)], check=True)
        # The suite's reviewed patches, as the image build applies them.
        site = next((venv / "lib").glob("python*/site-packages"))
        for patch in m.suites[suite.name].patches:
            subprocess.run(["patch", f"--directory={site}", "--strip=1", "--forward", "--batch", "--fuzz=0",
                            f"--input={ROOT / matrix.patch_path(suite.name, patch)}"], check=True,
                           stdout=subprocess.DEVNULL)
        (venv / ".complete").touch()
    return venv


def build_log() -> dict[str, dict]:
    """The last real build of each image."""
    path = cache.root() / "build-log.jsonl"
    latest: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            latest[entry["image"]] = entry
    return latest


def step_times(m, name: str, layer, steps: int, threads: int) -> dict:
    venv = host_venv(m, layer)
    recipe = cache.scratch() / f"bench-{name}.json"
    recipe.write_bytes(kinds.recipe_json(m, name))
    home = cache.scratch() / f"bench-home-{name}"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "entrypoints"), KUNLUN_MODEL=name, KUNLUN_RECIPE=str(recipe),
               HOME=str(home), PARL_BACKEND="paddle", KUNLUN_FLAVOUR="cpu")
    args = ["--steps", str(steps), "--threads", str(threads), "--batch-size", "2"]
    container_first, container = timed_run(["docker", "run", "--rm", "--network", "none", layer.image, *args])
    host_first, host = timed_run([str(venv / "bin/python"), "-m", "kunlun_train", *args], env)
    return {"unit": container["unit"], "container_step_s": container["mean_step_seconds"],
            "host_step_s": host["mean_step_seconds"],
            "container_vs_host_step": round(container["mean_step_seconds"] / host["mean_step_seconds"], 3),
            "container_peak_rss_mb": container["peak_rss_mb"], "host_peak_rss_mb": host["peak_rss_mb"],
            "container_throughput": container["throughput"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-steps", action="store_true", help="sizes and build times only")
    a = p.parse_args()
    m = matrix.load(ROOT / "matrix.yaml")
    native = m.arch_registry.native()
    client = docker_api.client()
    log = build_log()
    names = a.model or m.ready_models()
    results = {"machine": {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}, "models": {}}
    if a.model and RESULTS.exists():   # measuring some models again: keep the others' results
        results["models"] = json.loads(RESULTS.read_text()).get("models", {})
    chains = {name: chain.model_layer(m, name, "cpu", native).ancestry() for name in m.ready_models()}
    for name in names:
        layer = chains[name][-1]
        sizes = {l.kind: client.images.get(l.image).attrs["Size"] for l in chains[name]}
        entry = {"image": layer.image, "image_bytes": sizes["model"],
                 "suite_layer_bytes": sizes["suite"] - sizes["paddle"], "model_layer_bytes": sizes["model"] - sizes["suite"],
                 "build_s": {l.kind: log.get(l.image, {}).get("seconds") for l in chains[name]}}
        if not a.skip_steps:
            entry.update(step_times(m, name, layer, a.steps, a.threads))
        results["models"][name] = entry
        print(json.dumps({name: entry}), flush=True)
    # Sharing: every chain on its own vs each layer once.
    unique = {l.image: l for layers in chains.values() for l in layers}
    own = {img: client.images.get(img).attrs["Size"] - (client.images.get(l.parent.image).attrs["Size"] if l.parent else 0)
           for img, l in unique.items()}
    seconds = {img: log.get(img, {}).get("seconds") or 0.0 for img in unique}
    alone_bytes = sum(own[l.image] for layers in chains.values() for l in layers)
    alone_s = sum(seconds[l.image] for layers in chains.values() for l in layers)
    results["sharing"] = {"chains": len(chains), "unique_layers": len(unique),
                          "bytes_if_built_alone": alone_bytes, "bytes_unique": sum(own.values()),
                          "build_s_if_built_alone": round(alone_s, 1), "build_s_unique": round(sum(seconds.values()), 1)}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["sharing"], indent=2))


if __name__ == "__main__":
    main()
