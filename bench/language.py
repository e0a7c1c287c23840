"""BERT-base and ERNIE-base on the training engine (issue 12), written to bench/results/language.json:

  pipeline  steady step time at full size, batch 2, 64 tokens, with the default DataLoader workers:
            fine-tuning on a TSV whose sentences all fill the 64 tokens (tokenized in the worker) vs
            the synthetic pretraining smoke at the same batch and length, interleaved; plus the TSV
            with --workers 0 (tokenized in the training process), which isolates the input pipeline
  eval      one evaluation pass of the full-size classifier over 64 dev sentences of 128 tokens, batch 32
  learning  the keyword set of tests/sample_data/text.py with the integration test's reduced BERT,
            evaluated every 5 steps: the first step at >= 0.9 dev accuracy and the wall time to it

Run from the repository root after `invoke build --model bert-base --model ernie-base`:
`.venv/bin/python bench/language.py [--model M] [--rounds 2]` (KUNLUN_NAMESPACE is respected).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kunlun_bundle import matrix, naming  # noqa: E402
from tests.sample_data import text as sample  # noqa: E402

RESULTS = ROOT / "bench/results/language.json"
SMALL = ["-o", "DataLoader.max_seq_len=32", "-o", "Arch.num_hidden_layers=2", "-o", "Arch.hidden_size=64",
         "-o", "Arch.num_attention_heads=2", "-o", "Arch.intermediate_size=128", "-o", "Arch.vocab_size=512"]
UID = 1000   # the images' user


def run(image: str, args: list[str], data: Path | None = None, out: Path | None = None) -> dict:
    """docker run; the summary, the eval lines and when each line arrived (seconds from the start)."""
    mounts = (["-v", f"{data}:/data:ro"] if data else []) + (["-v", f"{out}:/output"] if out else [])
    start = time.monotonic()
    proc = subprocess.Popen(["docker", "run", "--rm", "--network", "none", *mounts, image, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    found = {"evals": [], "first_step_s": None}
    for line in proc.stdout:
        now = time.monotonic() - start
        if found["first_step_s"] is None and " step 1/" in line:
            found["first_step_s"] = round(now, 1)
        if " eval step " in line:
            parts = line.split(" | ")
            step = int(parts[0].rsplit(" ", 1)[1])
            found["evals"].append({"step": step, "at_s": round(now, 1), "line": line.strip(),
                                   **{p.split()[0]: float(p.split()[1]) for p in parts[1:-2]}})
        if line.startswith(("{\"event\": \"summary\"", "{\"event\": \"eval summary\"")):
            found["summary"] = json.loads(line)
    proc.wait()
    if proc.returncode or "summary" not in found:
        raise SystemExit(f"docker run {image} {' '.join(args)} failed ({proc.returncode})")
    found["wall_s"] = round(time.monotonic() - start, 1)
    return found


def long_sentences(root: Path, count: int, words: int = 80, seed: int = 3) -> Path:
    """train.tsv and dev.tsv whose sentences are longer than 128 tokens' worth of words: every batch
    is max_seq_len long, as the synthetic sequences are."""
    rng = random.Random(seed)
    vocab = sample.FILLER + sample.POSITIVE + sample.NEGATIVE
    for split in ("train", "dev"):
        rows = [(" ".join(rng.choice(vocab) for _ in range(words * 2 if split == "dev" else words)), i % 2)
                for i in range(count)]
        sample.write_tsv(root / f"{split}.tsv", rows)
    return root


def pipeline(image: str, data: Path, out: Path, steps: int, rounds: int) -> dict:
    common = ["--steps", str(steps), "--batch-size", "2", "-o", "DataLoader.max_seq_len=64"]
    synthetic, real, inline = [], [], []
    for _ in range(rounds):   # interleaved, so drift in the machine's load hits every side alike
        synthetic.append(run(image, common)["summary"]["mean_step_seconds"])
        real.append(run(image, [*common, "--data", "/data", "--eval-every", "0"], data)["summary"]["mean_step_seconds"])
        inline.append(run(image, [*common, "--data", "/data", "--eval-every", "0", "--workers", "0"],
                          data)["summary"]["mean_step_seconds"])
    s, r, i = (statistics.median(v) for v in (synthetic, real, inline))
    return {"synthetic_pretraining_step_s": s, "tsv_finetuning_step_s": r, "tsv_finetuning_no_workers_step_s": i,
            "real_vs_synthetic": round(r / s, 3), "workers_vs_no_workers": round(r / i, 3),
            "runs": {"synthetic": synthetic, "tsv": real, "tsv_workers_0": inline}}


def evaluation(image: str, data: Path, out: Path) -> dict:
    run(image, ["--steps", "1", "--batch-size", "2", "--data", "/data", "--output", "/output", "--eval-every", "0",
                "-o", "DataLoader.max_seq_len=128"], data, out)
    found = run(image, ["eval", "--data", "/data", "--weights", "/output/ckpt-000001",
                        "-o", "DataLoader.eval_batch_size=32", "-o", "DataLoader.max_seq_len=128"], data, out)
    metric = found["summary"]["metric"]
    return {"sentences": metric["samples"], "tokens": 128, "batch": 32, "eval_pass_s": metric["seconds"],
            "per_sentence_s": round(metric["seconds"] / metric["samples"], 4),
            "sst2_dev_872_estimate_s": round(872 * metric["seconds"] / metric["samples"], 1)}


def learning(image: str, data: Path, out: Path) -> dict:
    found = run(image, ["--data", "/data", "--output", "/output", "--steps", "60", "--batch-size", "16",
                        "--eval-every", "5", *SMALL, "-o", "Optimizer.lr.learning_rate=0.002"], data, out)
    reached = next((e for e in found["evals"] if e["accuracy"] >= 0.9), None)
    return {"threshold": 0.9, "chance": 0.5, "steps_to_threshold": reached and reached["step"],
            "wall_s_to_threshold_from_docker_run": reached and reached["at_s"],
            "wall_s_to_threshold_from_step_1": reached and round(reached["at_s"] - found["first_step_s"], 1),
            "accuracy_by_step": [(e["step"], e["accuracy"]) for e in found["evals"]],
            "mean_step_s": found["summary"]["mean_step_seconds"], "run_wall_s": found["wall_s"]}


def scratch(parent: Path, name: str) -> Path:
    """A directory the images' user can read and write."""
    path = parent / name
    path.mkdir(parents=True)
    os.chmod(path, 0o755)
    if os.getuid() == 0:
        os.chown(path, UID, UID)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--skip-pipeline", action="store_true")
    a = p.parse_args()
    m = matrix.load(ROOT / "matrix.yaml")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                          "loadavg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-language-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        long = long_sentences(scratch(tmp, "long"), 64)
        keywords = sample.learnable(scratch(tmp, "keywords"))
        for model in a.model or ["bert-base", "ernie-base"]:
            image = naming.model_latest(m, model)
            entry = results.setdefault("models", {}).setdefault(model, {})
            if not a.skip_pipeline:
                entry["pipeline"] = pipeline(image, long, scratch(tmp, f"{model}-p"), a.steps, a.rounds)
            entry["eval"] = evaluation(image, long, scratch(tmp, f"{model}-e"))
            entry["learning"] = learning(image, keywords, scratch(tmp, f"{model}-l"))
            print(json.dumps({model: entry}), flush=True)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
