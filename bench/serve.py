"""The `serve` command under load: ResNet50 served over the V2 protocol against `predictor.run()` in the
same image, the CPU configurations (oneDNN on/off, predictors x threads, batching on/off), images/s as
a fraction of this machine's fp32 peak, and SIGTERM under load (requests answered vs the server's
"serve summary"). Writes results/serve.json; README.md has the write-up.

The model is a 1-step ResNet50 exported at 224 px inside this script (speed does not depend on the
weights). The load client is closed-loop on 127.0.0.1 (the server's port is published on loopback
only): N threads, each with its own keep-alive HTTP/1.1 connection, sending one request and waiting for
its answer before the next; a level ends after --requests answers or --seconds, whichever comes first.
Requests are [1,3,224,224] FP32 tensors to /v2/models/resnet50/infer in Triton's binary tensor format
(tritonclient.http builds the body once and parses every response; http.client carries them), and one
level in JSON. The direct baseline runs in the same image (--entrypoint python): predictors configured
as serving/backend.py configures them, timing copy-in + run() + copy-out, run() alone, and the server's
own protocol decode + encode of the same body. The fp32 peak is computed from lscpu (nominal clock) and
measured by a small C probe (the clock the cores really run at, and their FMA rate), built with gcc.

Run from the repository root with the image built, nothing else loading the machine:
  .venv/bin/python bench/serve.py [--requests 200] [--seconds 60] [--levels 1,2,4,8]
It writes one run; the committed results/serve.json holds two such runs as {"runs": [...]}.
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.http as triton

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/serve.json"
IMAGE = "kunlun/resnet50"
NAME = "resnet50"
SHAPE = [1, 3, 224, 224]
GMACS = 4.1          # ResNet50 at 224 px: the usual "4.1 GFLOPs", which counts multiply-adds
PREFIX = "kunlun-serve-bench"

# The direct baseline, run in the image with its Python (argv[1]: JSON settings). The Config lines
# are serving/backend.py's PaddleBackend for the CPU.
DIRECT = r'''
import json, os, sys, threading, time
a = json.loads(sys.argv[1])
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, str(a["threads"]))        # as serving/backend.threads_env
import numpy as np
from paddle import inference
from kunlun_train.serving import protocol

def build():
    config = inference.Config("/output/inference/inference.json", "/output/inference/inference.pdiparams")
    config.disable_gpu()
    if a["onednn"]:
        config.enable_mkldnn()
        config.set_mkldnn_cache_capacity(10)
    else:
        config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(a["threads"])
    config.disable_glog_info()
    return inference.create_predictor(config)

body = open("/bench/body.bin", "rb").read()
predictors = [build() for _ in range(a["predictors"])]      # one at a time, as the server does
p0 = predictors[0]
iname, oname = p0.get_input_names()[0], p0.get_output_names()[0]
spec = protocol.ModelSpec("resnet50", "paddle_inference", (protocol.TensorSpec(iname, "FP32", (-1, 3, 224, 224)),),
                          (protocol.TensorSpec(oname, "FP32", (-1, 1000)),))
x = protocol.parse_request(body, spec, str(a["header_length"])).inputs[iname]

def once(p):
    p.get_input_handle(iname).copy_from_cpu(np.ascontiguousarray(x))
    p.run()
    return p.get_output_handle(oname).copy_to_cpu()

for p in predictors:
    for _ in range(3):
        once(p)
out = {"predictors": a["predictors"], "threads": a["threads"], "onednn": a["onednn"]}
if a["latency_runs"]:
    full, run_only, codec = [], [], []
    for _ in range(a["latency_runs"]):
        t0 = time.perf_counter()
        p0.get_input_handle(iname).copy_from_cpu(np.ascontiguousarray(x))
        t1 = time.perf_counter()
        p0.run()
        t2 = time.perf_counter()
        y = p0.get_output_handle(oname).copy_to_cpu()
        t3 = time.perf_counter()
        req = protocol.parse_request(body, spec, str(a["header_length"]))     # the server's decode ...
        protocol.encode_response("resnet50", req, {oname: y})                  # ... and encode
        t4 = time.perf_counter()
        full.append(t3 - t0); run_only.append(t2 - t1); codec.append(t4 - t3)
    out["latency_ms"] = {k: {"p50": round(float(np.percentile(v, 50)) * 1e3, 2),
                             "p90": round(float(np.percentile(v, 90)) * 1e3, 2),
                             "mean": round(float(np.mean(v)) * 1e3, 2)}
                         for k, v in (("copy_run_copy", full), ("run_only", run_only), ("decode_encode", codec))}
    out["latency_runs"] = a["latency_runs"]
if a["throughput_seconds"]:
    counts = [0] * len(predictors)
    go = threading.Barrier(len(predictors) + 1)
    def loop(i):
        go.wait()
        while time.perf_counter() < deadline:
            once(predictors[i])
            counts[i] += 1
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(predictors))]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline = t0 + a["throughput_seconds"]
    go.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out["throughput"] = {"runs": sum(counts), "seconds": round(wall, 2), "images_per_s": round(sum(counts) / wall, 2)}
print("RESULT " + json.dumps(out), flush=True)
'''


def docker(*args: str, check: bool = False, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- the machine -----------------------------------------------------------------------------------

def peak() -> dict:
    """fp32 peak = cores x clock x FLOPs per cycle per core (two FMA pipes x lanes x 2)."""
    info = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("Flags", "").split())
    cores = int(info.get("Core(s) per socket", 1)) * int(info.get("Socket(s)", 1))
    mhz = float(info.get("CPU max MHz") or info.get("CPU MHz") or 0)
    clock_from = "lscpu"
    if not mhz:
        mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text()).group(1))
        clock_from = "/proc/cpuinfo 'cpu MHz' (lscpu gives none in this KVM guest; no boost clock is visible)"
    amd = info.get("Vendor ID") == "AuthenticAMD"
    if "avx512f" in flags and not amd:
        per_cycle, why = 64, "AVX-512: 2 FMA units x 16 fp32 lanes x 2"
    elif "avx512f" in flags:   # Zen 4 (family 25): AVX-512 runs on its two 256-bit FMA pipes, double-pumped
        per_cycle, why = 32, ("AVX-512 on AMD Zen 4 (family 25) executes as 2 x 256 bit: 2 FMA pipes x 8 fp32 "
                              "lanes x 2 = 32, the same as AVX2+FMA")
    elif "avx2" in flags and "fma" in flags:
        per_cycle, why = 32, "AVX2+FMA: 2 FMA units x 8 fp32 lanes x 2"
    else:
        per_cycle, why = 8, "SSE: 4 lanes x (add + mul)"
    gflops = cores * mhz / 1e3 * per_cycle
    return {"cpu": info.get("Model name"), "family": info.get("CPU family"), "model": info.get("Model"),
            "cores": cores, "mhz": mhz, "clock_from": clock_from, "flops_per_cycle": per_cycle, "why": why,
            "peak_gflops": round(gflops, 1), "resnet50_gflop_per_image": 2 * GMACS,
            "resnet50_flops_from": "4.1 G multiply-adds at 224 px (the usual '4.1 GFLOPs'; thop/fvcore count "
                                   "4.11-4.14 G MACs for torchvision's ResNet50) x 2 FLOPs per multiply-add",
            "peak_images_per_s": round(gflops / (2 * GMACS), 1), "probe": probe()}


PROBE = r'''
/* clock: a chain of dependent adds (1 cycle each); fp32 peak: independent FMA chains, 256 and 512 bit */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 400000000L;
    unsigned long x = 0;
    double t0 = now();
    for (long i = 0; i < n; i++)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    double t1 = now();
    printf("clock_ghz %.3f\n", 8.0 * n / (t1 - t0) / 1e9);
    long m = n / 4;
    __m256 a[12], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) a[k] = _mm256_set1_ps((float)k);
    t0 = now();
    for (long i = 0; i < m; i++)
        for (int k = 0; k < 12; k++) a[k] = _mm256_fmadd_ps(a[k], b, c);
    t1 = now();
    float s = 0; for (int k = 0; k < 12; k++) s += a[k][0];
    printf("fma256_gflops %.1f (flops/cycle at that clock: see below) %g\n", 12.0 * 8 * 2 * m / (t1 - t0) / 1e9, s);
    __m512 p[12], q = _mm512_set1_ps(0.999999f), r = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) p[k] = _mm512_set1_ps((float)k);
    t0 = now();
    for (long i = 0; i < m; i++)
        for (int k = 0; k < 12; k++) p[k] = _mm512_fmadd_ps(p[k], q, r);
    t1 = now();
    s = 0; for (int k = 0; k < 12; k++) s += p[k][0];
    printf("fma512_gflops %.1f %g\n", 12.0 * 16 * 2 * m / (t1 - t0) / 1e9, s);
    return 0;
}
'''


def probe() -> dict | None:
    """The clock the cores really run at (a chain of dependent adds, one per cycle) and the fp32 FMA
    rate they reach (12 independent chains, 256 and 512 bit), one copy per core at once; needs gcc."""
    with tempfile.TemporaryDirectory() as tmp:
        source, binary = Path(tmp) / "probe.c", Path(tmp) / "probe"
        source.write_text(PROBE)
        if subprocess.run(["gcc", "-O3", "-funroll-loops", "-mavx512f", "-mfma", "-o", str(binary), str(source)],
                          capture_output=True).returncode:
            return None
        cores = peak_info()["cores"]
        runs = [subprocess.Popen([str(binary)], stdout=subprocess.PIPE, text=True) for _ in range(cores)]
        outs = [dict((line.split()[0], float(line.split()[1])) for line in r.communicate()[0].splitlines())
                for r in runs]
    return {"clock_ghz": [o["clock_ghz"] for o in outs], "fma256_gflops": [o["fma256_gflops"] for o in outs],
            "fma512_gflops": [o["fma512_gflops"] for o in outs],
            "peak_gflops": round(sum(max(o["fma256_gflops"], o["fma512_gflops"]) for o in outs), 1),
            "flops_per_cycle": round(sum(o["fma256_gflops"] / o["clock_ghz"] for o in outs) / len(outs), 1),
            "peak_images_per_s": round(sum(max(o["fma256_gflops"], o["fma512_gflops"]) for o in outs) / (2 * GMACS), 1)}


def peak_info() -> dict:
    info = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    return {"cores": int(info.get("Core(s) per socket", 1)) * int(info.get("Socket(s)", 1)), "info": info}


def wait_quiet(poll: float) -> None:
    """Until no other container trains here (the lead's measurements), checking every `poll` s."""
    while True:
        ps = docker("ps", "--no-trunc", "--format", "{{.Names}} {{.Command}}").stdout
        busy = [line for line in ps.splitlines() if not line.startswith(PREFIX)
                and ("/ref/classification.py" in line or "--epochs" in line)]
        if not busy:
            return
        say(f"waiting: {len(busy)} training container(s) running")
        time.sleep(poll)


# --- the export and the bodies ---------------------------------------------------------------------

def export(out: Path) -> float:
    started = time.monotonic()
    docker("run", "--rm", "--network", "none", "-v", f"{out}:/output", IMAGE, "--steps", "1", "--output",
           "/output", "--export", "/output/inference", "-o", "Global.image_size=224", check=True)
    return time.monotonic() - started


def bodies(input_name: str, output_name: str) -> dict:
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    tensor = triton.InferInput(input_name, SHAPE, "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    body, header = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=[triton.InferRequestedOutput(output_name, binary_data=True)])
    as_json = json.dumps({"inputs": [{"name": input_name, "shape": SHAPE, "datatype": "FP32",
                                      "data": x.reshape(-1).tolist()}]}).encode()
    return {"binary": (body, {"Content-Type": "application/octet-stream",
                              "Inference-Header-Content-Length": str(header)}, header),
            "json": (as_json, {"Content-Type": "application/json"}, None)}


# --- the server ------------------------------------------------------------------------------------

class Server:
    """`serve` in a container of its own, its port published on 127.0.0.1 only."""

    def __init__(self, out: Path, label: str, flags: list[str]):
        self.name, self.flags = f"{PREFIX}-{label}", flags
        docker("rm", "-f", self.name)
        docker("run", "-d", "--name", self.name, "-p", "127.0.0.1::8000", "-v", f"{out}:/output:ro",
               IMAGE, "serve", *flags, check=True)
        self.port = int(docker("port", self.name, "8000/tcp", check=True).stdout.split()[0].rsplit(":", 1)[1])
        started = time.monotonic()
        while True:
            if docker("inspect", "-f", "{{.State.Running}}", self.name).stdout.strip() != "true":
                raise SystemExit(f"{self.name} exited:\n{self.logs()}")
            try:
                if get(self.port, "/v2/health/ready")[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() - started > 300:
                raise SystemExit(f"{self.name} not ready after 300 s:\n{self.logs()}")
            time.sleep(0.5)
        self.ready_s = round(time.monotonic() - started, 1)

    def logs(self) -> str:
        done = docker("logs", self.name)
        return done.stdout + done.stderr

    def metrics(self) -> dict[str, float]:
        text = get(self.port, "/metrics")[1].decode()
        found = {}
        for key in ("kunlun_serve_inferences_total", "kunlun_serve_executions_total"):
            m = re.search(rf'^{key}\{{model="{NAME}"\}} ([\d.e+]+)$', text, re.M)
            found[key] = float(m.group(1)) if m else 0.0
        return found

    def remove(self) -> None:
        docker("rm", "-f", self.name)


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def tensor_names(out: Path) -> tuple[str, str]:
    """The export's input and output names, from the image's Paddle (before any server runs)."""
    code = ("from paddle import inference; c = inference.Config('/output/inference/inference.json', "
            "'/output/inference/inference.pdiparams'); c.disable_glog_info(); p = inference.create_predictor(c); "
            "print('NAMES', p.get_input_names()[0], p.get_output_names()[0])")
    done = docker("run", "--rm", "--network", "none", "-v", f"{out}:/output:ro", "--entrypoint",
                  "/opt/kunlun/venv/bin/python", IMAGE, "-c", code, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("NAMES "))
    return tuple(line.split()[1:3])


def metadata(port: int) -> tuple[str, str]:
    meta = json.loads(get(port, f"/v2/models/{NAME}")[1])
    return meta["inputs"][0]["name"], meta["outputs"][0]["name"]


def post(conn: http.client.HTTPConnection, body: bytes, headers: dict) -> tuple[int, bytes, str | None]:
    conn.request("POST", f"/v2/models/{NAME}/infer", body, headers)
    response = conn.getresponse()
    return response.status, response.read(), response.getheader("Inference-Header-Content-Length")


def check_answer(status: int, content: bytes, header: str | None, output_name: str) -> None:
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {content[:300]!r}")
    if header is not None:
        result = triton.InferenceServerClient.parse_response_body(content, header_length=int(header))
        y = result.as_numpy(output_name)
    else:
        out = json.loads(content)["outputs"][0]
        y = np.asarray(out["data"], np.float32).reshape(out["shape"])
    if y.shape != (1, 1000):
        raise RuntimeError(f"output shape {y.shape}")


def load(server: Server, concurrency: int, body: tuple, output_name: str, requests: int, seconds: float) -> dict:
    """Closed loop: `concurrency` clients, each sending its next request when its last is answered;
    after one untimed request each, until `requests` answers or `seconds`, whichever comes first."""
    content, headers, _ = body
    latencies: list[float] = []
    lock, issued = threading.Lock(), [0]
    errors: list[str] = []
    go = threading.Barrier(concurrency + 1)
    window = {}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            check_answer(*post(conn, content, headers), output_name)     # warm: not timed
        except Exception as e:
            errors.append(f"warm-up: {e}")
        go.wait()
        while True:
            with lock:
                if issued[0] >= requests or time.perf_counter() > window["deadline"]:
                    break
                issued[0] += 1
            t0 = time.perf_counter()
            try:
                check_answer(*post(conn, content, headers), output_name)
            except Exception as e:
                errors.append(str(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
                continue
            t1 = time.perf_counter()
            with lock:
                latencies.append(t1 - t0)
                window["last"] = t1
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    before = server.metrics()
    window["deadline"] = time.perf_counter() + 1e9
    go.wait()
    t0 = time.perf_counter()
    window["deadline"] = t0 + seconds
    for t in threads:
        t.join()
    after = server.metrics()
    wall = window.get("last", time.perf_counter()) - t0
    ms = np.array(latencies) * 1e3
    runs = after["kunlun_serve_executions_total"] - before["kunlun_serve_executions_total"]
    rows = after["kunlun_serve_inferences_total"] - before["kunlun_serve_inferences_total"]
    result = {"concurrency": concurrency, "answered": len(latencies), "errors": len(errors),
              "seconds": round(wall, 2), "images_per_s": round(len(latencies) / wall, 2) if wall > 0 else 0,
              "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
              "p90_ms": round(float(np.percentile(ms, 90)), 1) if len(ms) else None,
              "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
              "mean_rows_per_run": round(rows / runs, 2) if runs else None}
    if errors:
        result["first_error"] = errors[0]
    say(f"  c={concurrency}: {result}")
    return result


# --- SIGTERM under load ----------------------------------------------------------------------------

def sigterm(server: Server, body: tuple, output_name: str, clients: int, after_s: float) -> dict:
    """`clients` closed-loop clients; `docker stop --time 30` once they have run `after_s` s; each client
    stops at its first request without an answer after the stop."""
    content, headers, _ = body
    counts: dict[str, int] = {}
    lock = threading.Lock()
    stopping = threading.Event()

    def count(what: str) -> None:
        with lock:
            counts[what] = counts.get(what, 0) + 1

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, data, header = post(conn, content, headers)
            except ConnectionRefusedError:
                count("no answer: connection refused")
                if stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            except (http.client.HTTPException, OSError) as e:
                count(f"no answer: {type(e).__name__}")
                conn.close()
                if stopping.is_set():
                    return
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                continue
            count(f"answered {status}")
            if status == 200:
                check_answer(status, data, header, output_name)
            else:
                time.sleep(0.01)
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(after_s)
    with lock:
        before_stop = sum(v for k, v in counts.items() if k.startswith("answered"))
    stopping.set()
    t0 = time.monotonic()
    docker("stop", "--time", "30", server.name)
    stop_s = time.monotonic() - t0
    for t in threads:
        t.join(30)
    code = int(docker("inspect", "-f", "{{.State.ExitCode}}", server.name).stdout.strip())
    logs = server.logs()
    summary = next((json.loads(line[line.index("{"):]) for line in logs.splitlines() if '"serve summary"' in line), None)
    drain = [line for line in logs.splitlines() if "SIGTERM" in line]
    answered = sum(v for k, v in counts.items() if k.startswith("answered"))
    result = {"clients": clients, "stop_after_s": after_s, "answered_before_stop": before_stop,
              "client_counts": dict(sorted(counts.items())), "client_answered": answered,
              "stop_to_exit_s": round(stop_s, 2), "exit_code": code, "server_summary": summary,
              "server_drain_line": drain[0] if drain else None,
              "all_answered": bool(summary) and summary["unanswered"] == 0 and summary["answered"] == answered}
    say(f"  SIGTERM: {result}")
    return result


# --- the direct baseline ---------------------------------------------------------------------------

def direct(out: Path, bench: Path, header: int, predictors: int, threads: int, onednn: bool,
           latency_runs: int, throughput_seconds: float) -> dict:
    settings = {"predictors": predictors, "threads": threads, "onednn": onednn, "header_length": header,
                "latency_runs": latency_runs, "throughput_seconds": throughput_seconds}
    done = docker("run", "--rm", "--network", "none", "--name", f"{PREFIX}-direct", "-v", f"{out}:/output:ro",
                  "-v", f"{bench}:/bench:ro", "--entrypoint", "/opt/kunlun/venv/bin/python", IMAGE, "-c", DIRECT,
                  json.dumps(settings))
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"direct run failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line[len("RESULT "):])
    say(f"  direct: {result}")
    return result


def summary(r: dict) -> dict:
    """The ratios and fractions of peak the write-up quotes, from the raw numbers above."""
    servers = {s["label"]: {(lv["concurrency"], lv["encoding"]): lv for lv in s["levels"]} for s in r["servers"]}
    direct_of = {(d["predictors"], d["threads"], d["onednn"]): d for d in r["direct"]}
    peak_ips = r["machine"]["peak_images_per_s"]
    measured_ips = (r["machine"].get("probe") or {}).get("peak_images_per_s")
    served_c1 = servers["1x2-onednn"][(1, "binary")]["p50_ms"]
    d1 = direct_of[(1, 2, True)]["latency_ms"]
    after = r["direct_after"]["latency_ms"]["copy_run_copy"]["p50"]
    out = {"p50_c1_served_ms": served_c1, "p50_direct_ms_before_after": [d1["copy_run_copy"]["p50"], after],
           "p50_ratio_vs_direct_copy_run_copy": round(served_c1 / d1["copy_run_copy"]["p50"], 3),
           "p50_ratio_vs_direct_after": round(served_c1 / after, 3),
           "p50_ratio_vs_direct_with_decode_encode": round(
               served_c1 / (d1["copy_run_copy"]["p50"] + d1["decode_encode"]["p50"]), 3),
           "p50_ratio_json_vs_direct": round(servers["1x2-onednn"][(1, "json")]["p50_ms"] / d1["copy_run_copy"]["p50"], 3),
           "throughput_vs_direct": {}, "images_per_s": {}}
    for label, levels in servers.items():
        for (c, enc), lv in levels.items():
            if enc == "binary":
                out["images_per_s"][f"{label} c={c}"] = {
                    "images_per_s": lv["images_per_s"], "of_nominal_peak": round(lv["images_per_s"] / peak_ips, 3),
                    "of_measured_peak": round(lv["images_per_s"] / measured_ips, 3) if measured_ips else None}
    for c in (1, 2, 4, 8):
        n = min(c, 4)
        ref = direct_of.get((n, 2 if n == 1 else 1, True))
        for label in ("1x2-onednn", "2x1-onednn"):
            lv = servers[label].get((c, "binary"))
            if lv and ref and c >= int(label[0]):     # every predictor busy
                out["throughput_vs_direct"][f"{label} c={c} vs {n} direct predictor(s)"] = round(
                    lv["images_per_s"] / ref["throughput"]["images_per_s"], 3)
    best = max(out["images_per_s"].items(), key=lambda kv: kv[1]["images_per_s"])
    out["fastest"] = {"config": best[0], **best[1]}
    return out


# --- all of it -------------------------------------------------------------------------------------

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="answers per level, at most (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=60, help="seconds per level, at most (default: %(default)s)")
    p.add_argument("--levels", default="1,2,4,8", help="concurrency of the default server (default: %(default)s)")
    p.add_argument("--direct-runs", type=int, default=100, help="timed run()s, latency (default: %(default)s)")
    p.add_argument("--direct-seconds", type=float, default=20, help="direct throughput run (default: %(default)s)")
    p.add_argument("--no-wait", action="store_true", help="do not wait for training containers to end")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args()
    levels = [int(n) for n in a.levels.split(",")]
    results: dict = {"when": time.strftime("%Y-%m-%d %H:%M"), "image": IMAGE, "image_id":
                     docker("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()[7:19],
                     "requests_per_level": a.requests, "seconds_per_level": a.seconds, "machine": peak()}
    say(f"peak: {results['machine']}")
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    out, bench = tmp / "out", tmp / "bench"
    for d in (out, bench):
        d.mkdir()
        d.chmod(0o777)
    try:
        if not a.no_wait:
            wait_quiet(30)
        results["export_s"] = round(export(out), 1)
        say(f"exported in {results['export_s']} s")
        names = tensor_names(out)
        servers = results["servers"] = []

        def measure(label: str, flags: list[str], plan: list[tuple[int, str]]) -> dict:
            if not a.no_wait:
                wait_quiet(30)
            server = Server(out, label, flags)
            try:
                entry = {"label": label, "flags": flags, "ready_s": server.ready_s, "levels": []}
                say(f"{label} ({' '.join(flags)}): ready in {server.ready_s} s")
                assert metadata(server.port) == names, (metadata(server.port), names)
                body = bodies(*names)
                for concurrency, encoding in plan:
                    level = load(server, concurrency, body[encoding], names[1], a.requests, a.seconds)
                    level["encoding"] = encoding
                    entry["levels"].append(level)
                entry["log"] = [line for line in server.logs().splitlines() if "serving" in line or "ready:" in line]
            finally:
                server.remove()
            servers.append(entry)
            return entry

        # the direct baseline first (and its latency again after the servers): N predictors sharing the CPUs
        (bench / "body.bin").write_bytes(bodies(*names)["binary"][0])
        header = results["header_length"] = bodies(*names)["binary"][2]
        if not a.no_wait:
            wait_quiet(30)
        results["direct"] = [
            direct(out, bench, header, 1, 2, True, a.direct_runs, a.direct_seconds),
            direct(out, bench, header, 2, 1, True, 0, a.direct_seconds),
            direct(out, bench, header, 4, 1, True, 0, a.direct_seconds),
            direct(out, bench, header, 1, 2, False, max(10, a.direct_runs // 4), a.direct_seconds),
            direct(out, bench, header, 2, 1, False, 0, a.direct_seconds)]

        off = ["--max-batch-size", "1"]     # batching off: each request runs alone; warm only size 1
        measure("1x2-onednn", ["--workers", "1", "--threads", "2", *off],
                [(c, "binary") for c in levels] + [(1, "json")])
        measure("2x1-onednn", ["--workers", "2", "--threads", "1", *off], [(c, "binary") for c in levels if c <= 4])
        measure("1x2-no-onednn", ["--workers", "1", "--threads", "2", "--no-onednn", *off], [(1, "binary"), (4, "binary")])
        measure("2x1-no-onednn", ["--workers", "2", "--threads", "1", "--no-onednn", *off], [(4, "binary")])
        measure("1x2-onednn-batching", ["--workers", "1", "--threads", "2", "--max-batch-size", "4",
                                        "--max-wait-ms", "5"], [(4, "binary"), (8, "binary")] if 8 in levels
                else [(4, "binary")])
        results["direct_after"] = direct(out, bench, header, 1, 2, True, a.direct_runs, 0)

        if not a.no_wait:
            wait_quiet(30)
        server = Server(out, "sigterm", ["--workers", "1", "--threads", "2", *off, "--drain-seconds", "20"])
        try:
            results["sigterm"] = sigterm(server, bodies(*names)["binary"], names[1], 4, 10.0)
        finally:
            server.remove()
    finally:
        subprocess.run(["rm", "-rf", str(tmp)])
        for line in docker("ps", "-aq", "--filter", f"name={PREFIX}").stdout.split():
            docker("rm", "-f", line)
    results["summary"] = summary(results)
    say(f"summary: {json.dumps(results['summary'], indent=1)}")
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    say(f"wrote {a.out}")


if __name__ == "__main__":
    main()
