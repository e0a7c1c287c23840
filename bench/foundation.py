"""Foundation benchmarks (issue 2), written to bench/results/foundation.json:

  build    cold build time per layer of the ResNet50 chain, then the no-op rebuild (ratio)
  size     image size per layer, and the ratio to (base rootfs + installed site-packages)
  step     training step time in the container vs the same entrypoint on the host with the
           same thread count (interleaved runs), and `docker run` -> first step latency

Run from the repository root with the host tools: `.venv/bin/python bench/foundation.py [--skip-cold]`.
--skip-cold keeps the existing images (no cold build numbers). Ratios are taken within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kunlun_bundle import matrix  # noqa: E402
from kunlun_bundle.containers import docker_api  # noqa: E402
from kunlun_bundle.host import cache  # noqa: E402
from kunlun_bundle.images import build, chain, kinds, lock, rootfs  # noqa: E402

RESULTS = ROOT / "bench/results/foundation.json"


def chain_layers(m):
    return chain.model_layer(m, "resnet50", "cpu", m.arch_registry.native()).ancestry()


def sh(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


def bench_build(m, cold: bool) -> dict:
    layers = chain_layers(m)
    client = docker_api.client()
    out = {}
    if cold:
        # Untag the chain (and the base's dated tag), then prune what is left dangling: the
        # throw-away install stages hang off the layers, so pruning takes a few passes.
        for layer in reversed(layers):
            for image in client.images.list(name=layer.image.split(":")[0]):
                for tag in image.tags:
                    if tag == layer.image or tag.startswith(layer.image + "-") or tag.endswith(":latest"):
                        client.images.remove(tag)
        for _ in range(6):
            if not client.images.prune(filters={"dangling": True}).get("ImagesDeleted"):
                break
        rootfs.rootfs_path(m, "bookworm", m.arch_registry.native()).unlink(missing_ok=True)
        start = time.monotonic()
        results = build.build_layers(m, layers, ROOT)
        out["cold_total_s"] = round(time.monotonic() - start, 1)
        out["cold_per_layer_s"] = {r.layer.kind: round(r.seconds, 1) for r in results.values()}
    start = time.monotonic()
    results = build.build_layers(m, layers, ROOT)
    out["noop_rebuild_s"] = round(time.monotonic() - start, 1)
    out["noop_statuses"] = {r.layer.kind: r.status for r in results.values()}
    if cold:
        out["noop_vs_cold"] = round(out["noop_rebuild_s"] / out["cold_total_s"], 4)
    return out


def bench_size(m) -> dict:
    layers = chain_layers(m)
    client = docker_api.client()
    sizes = {layer.kind: client.images.get(layer.image).attrs["Size"] for layer in layers}
    kinds = [layer.kind for layer in layers]
    own = {k: sizes[k] - (sizes[kinds[i - 1]] if i else 0) for i, k in enumerate(kinds)}
    rootfs_size = rootfs.rootfs_path(m, "bookworm", m.arch_registry.native()).stat().st_size
    site = sh("docker", "run", "--rm", "--entrypoint", "du", layers[-1].image, "-sb",
              "/opt/kunlun/venv/lib/python3.11/site-packages", "/opt/kunlun/suites/paddleclas").stdout
    site_bytes = sum(int(line.split()[0]) for line in site.splitlines())
    return {"image_bytes": sizes["model"], "own_bytes_per_layer": own, "rootfs_tar_bytes": rootfs_size,
            "site_packages_bytes": site_bytes,
            "image_vs_rootfs_plus_site_packages": round(sizes["model"] / (rootfs_size + site_bytes), 3)}


def host_venv(m) -> Path:
    """The same locked wheels installed on the host (from the cache, hashes required, no network)."""
    venv = cache.root() / "bench-host-venv"
    if not (venv / ".complete").exists():
        sh(sys.executable, "-m", "venv", "--clear", str(venv))
        reqs = venv / "requirements.txt"
        lines = []
        for layer in chain_layers(m):
            if layer.lock:
                lines += [w.line().split("  #")[0] for w in lock.LockFile.read(ROOT / layer.lock).wheels]
        reqs.write_text("\n".join(lines) + "\n")
        sh(str(venv / "bin/pip"), "install", "-q", "--no-index", "--no-deps", "--require-hashes",
           "--find-links", str(cache.wheels()), "-r", str(reqs))
        (venv / ".complete").touch()
    return venv


def timed_run(cmd: list[str], env=None) -> tuple[float, dict]:
    """Wall time from process start to the first step line, and the summary."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    first, summary = None, None
    for line in proc.stdout:
        if first is None and " step 1/" in line:
            first = time.monotonic() - start
        if line.startswith('{"event": "summary"'):
            summary = json.loads(line)
    proc.wait()
    if proc.returncode or summary is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return first, summary


def bench_step(m, steps: int, rounds: int, threads: int) -> dict:
    image = chain_layers(m)[-1].image
    venv = host_venv(m)
    recipe = cache.scratch() / "bench-recipe.json"
    recipe.write_bytes(kinds.recipe_json(m, "resnet50"))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "entrypoints"), KUNLUN_MODEL="resnet50", KUNLUN_RECIPE=str(recipe),
               HOME=str(cache.scratch()))
    args = ["--steps", str(steps), "--threads", str(threads)]
    host, container = [], []
    for _ in range(rounds):   # interleaved, so drift in machine load hits both sides alike
        host.append(timed_run([str(venv / "bin/python"), "-m", "kunlun_train", *args], env))
        container.append(timed_run(["docker", "run", "--rm", "--network", "none", image, *args]))

    def median(runs, key):
        return round(statistics.median(r[1][key] if key != "first" else r[0] for r in runs), 4)
    result = {"steps_per_run": steps, "rounds": rounds, "threads": threads,
              "host_step_s": median(host, "mean_step_seconds"),
              "container_step_s": median(container, "mean_step_seconds"),
              "host_first_step_latency_s": median(host, "first"),
              "container_first_step_latency_s": median(container, "first")}
    result["container_vs_host_step"] = round(result["container_step_s"] / result["host_step_s"], 3)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-cold", action="store_true")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    m = matrix.load(ROOT / "matrix.yaml")
    results = {"machine": {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}}
    results["build"] = bench_build(m, cold=not a.skip_cold)
    results["size"] = bench_size(m)
    results["step"] = bench_step(m, a.steps, a.rounds, a.threads)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
