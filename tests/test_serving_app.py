"""The HTTP server (serving/app.py, serving/cli.py) with the numpy stand-in backend on 127.0.0.1 and an
ephemeral port: Triton's standard V2 client works unchanged, every bad input is its 4xx and the next
request is served, ready only after warm-up, metrics count what was sent, batching merges concurrent
requests, the task route calls its handler, and SIGTERM under load answers every request received."""
import contextlib
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from kunlun_train.serving import backend, cli
from kunlun_train.serving.app import Model, Service, bind, create_app
from kunlun_train.serving.batching import Batcher
from kunlun_train.serving.protocol import BadRequest
from tests.serving_standin import POISON, StandIn, expected

STANDIN = Path(__file__).with_name("serving_standin.py")


@contextlib.contextmanager
def serving(handler=None, wait_ready=True, build_delay=0.0, delay=0.0, max_body_bytes=1 << 20, **batching):
    built = []

    def make(i):
        built.append(StandIn(delay, build_delay))
        return built[-1]
    batcher = Batcher("standin", make, **{"max_batch_size": 8, **batching})
    service = Service({"standin": Model("standin", batcher, handler)}, max_body_bytes, say=lambda text: None)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(service), http="h11", ws="none", loop="asyncio",
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    loader = threading.Thread(target=service.load, daemon=True)
    loader.start()
    while not server.started:
        time.sleep(0.01)
    if wait_ready:
        loader.join(10)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", service, built
    finally:
        server.should_exit = True
        thread.join(5)
        service.drain(2)


def call(address, method, path, body=None, headers=None):
    """(status, headers, body) over a fresh connection."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, path, data, headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def infer_body(rows=1, value=1.0, **extra):
    return {"inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP32", "data": [[value] * 4] * rows}], **extra}


def ok(address):
    status, _, content = call(address, "POST", "/v2/models/standin/infer", infer_body(2, 0.5))
    assert status == 200, content
    np.testing.assert_allclose(json.loads(content)["outputs"][0]["data"],
                               expected([[0.5] * 4] * 2)["y"].reshape(-1), rtol=1e-6)


def metrics(address) -> dict:
    """name{label=value,...} -> value, from /metrics."""
    status, headers, content = call(address, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(content.decode()):
        for s in family.samples:
            found[s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"] = s.value
    return found


def test_conformance_with_tritons_http_client():
    import tritonclient.http as triton
    with serving() as (address, _, _):
        client = triton.InferenceServerClient(address)
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("standin")
        assert client.is_model_ready("standin", "1") and not client.is_model_ready("other")
        assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
        meta = client.get_model_metadata("standin")
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert [o["name"] for o in meta["outputs"]] == ["y", "label"]
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        for binary in (True, False):
            tensor = triton.InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            wanted = [triton.InferRequestedOutput("y", binary_data=binary), triton.InferRequestedOutput("label")]
            result = client.infer("standin", [tensor], request_id=f"r-{binary}", outputs=wanted)
            np.testing.assert_allclose(result.as_numpy("y"), expected(x)["y"], rtol=1e-6)
            np.testing.assert_array_equal(result.as_numpy("label"), expected(x)["label"])
            assert result.get_response()["id"] == f"r-{binary}"
        result = client.infer("standin", [tensor], model_version="1")             # every output by default
        assert {o["name"] for o in result.get_response()["outputs"]} == {"y", "label"}
        with pytest.raises(triton.InferenceServerException, match="unknown model 'other'"):
            client.infer("other", [tensor])
        with pytest.raises(triton.InferenceServerException, match="has no version '2'"):
            client.get_model_metadata("standin", "2")


BAD = [  # (method, path, body, headers, status, words in the error)
    ("POST", "/v2/models/standin/infer", b"", {}, 400, "empty body"),
    ("POST", "/v2/models/standin/infer", b"{oops", {}, 400, "malformed JSON"),
    ("POST", "/v2/models/standin/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT32",
                                                      "data": [1, 2, 3, 4]}]}, {}, 400, "expected FP32"),
    ("POST", "/v2/models/standin/infer", {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                                      "data": [1, 2, 3]}]}, {}, 400, "does not fit the model's [-1, 4]"),
    ("POST", "/v2/models/standin/infer", {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                                      "data": [1, 2, 3, 4]}]}, {}, 400, "needs 8 values, data has 4"),
    ("POST", "/v2/models/standin/infer", {"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "FP32",
                                                      "data": []}]}, {}, 400, "non-negative integers"),
    ("POST", "/v2/models/standin/infer", infer_body(9), {}, 400, "at most 8 per request"),
    ("POST", "/v2/models/standin/infer", infer_body(outputs=[{"name": "z"}]), {}, 400, "unknown output 'z'"),
    ("POST", "/v2/models/standin/infer", b"[" + b"0," * 3000 + b"0]", {}, 413, "larger than 4096 bytes"),
    ("POST", "/v2/models/other/infer", infer_body(), {}, 404, "unknown model 'other'"),
    ("POST", "/v2/models/standin/versions/7/infer", infer_body(), {}, 404, "no version '7'"),
    ("GET", "/v2/models/other", None, {}, 404, "unknown model"),
    ("GET", "/v2/models/standin/infer", None, {}, 405, "Method Not Allowed"),
    ("GET", "/v3/nothing", None, {}, 404, "Not Found"),
    ("POST", "/v2/models/standin/infer", infer_body(1, POISON), {}, 500, "poisoned input"),
]


def test_every_bad_input_is_its_error_and_the_next_request_is_served():
    with serving(max_body_bytes=4096) as (address, _, _):
        for method, path, body, headers, status, words in BAD:
            code, got_headers, content = call(address, method, path, body, headers)
            assert (code, words in json.loads(content)["error"]) == (status, True), (path, content)
            assert got_headers["content-type"] == "application/json"
            ok(address)


def test_ready_only_after_every_predictor_is_warmed():
    with serving(wait_ready=False, build_delay=0.6, workers=2, max_batch_size=4) as (address, service, built):
        assert call(address, "GET", "/v2/health/live")[0] == 200
        status, _, content = call(address, "GET", "/v2/health/ready")
        assert status == 503 and "starting" in json.loads(content)["error"]
        assert call(address, "GET", "/v2/models/standin/ready")[0] == 503
        status, _, content = call(address, "POST", "/v2/models/standin/infer", infer_body())
        assert status == 503 and "not ready" in json.loads(content)["error"]
        deadline = time.monotonic() + 10
        while call(address, "GET", "/v2/health/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [sorted(b.runs) for b in built] == [[1, 2, 3, 4]] * 2      # every batch size, every worker
        assert metrics(address)["kunlun_serve_model_ready{model=standin}"] == 1
        ok(address)


def test_metrics_count_what_was_sent():
    with serving() as (address, _, _):
        for rows in (1, 2, 3):
            assert call(address, "POST", "/v2/models/standin/infer", infer_body(rows))[0] == 200
        assert call(address, "POST", "/v2/models/standin/infer", b"{")[0] == 400
        found = metrics(address)
        assert found["kunlun_serve_requests_total{code=200,model=standin,route=infer}"] == 3
        assert found["kunlun_serve_requests_total{code=400,model=standin,route=infer}"] == 1
        assert found["kunlun_serve_request_duration_seconds_count{code=200,model=standin,route=infer}"] == 3
        assert found["kunlun_serve_inferences_total{model=standin}"] == 6          # rows, warm-up excluded
        assert found["kunlun_serve_executions_total{model=standin}"] == 3
        assert found["kunlun_serve_queue_duration_seconds_count{model=standin}"] == 3
        assert found["kunlun_serve_compute_duration_seconds_count{model=standin}"] == 3
        assert found["kunlun_serve_batch_size_sum{model=standin}"] == 6


def test_batching_merges_concurrent_requests_and_isolates_a_bad_one():
    def concurrently(values):
        with ThreadPoolExecutor(len(values)) as pool:
            return list(pool.map(lambda v: call(address, "POST", "/v2/models/standin/infer", infer_body(1, v)), values))
    with serving(workers=1, max_wait_ms=150, delay=0.05) as (address, _, built):
        answers = concurrently([1.0, 2.0, 3.0, 4.0])
        assert [a[0] for a in answers] == [200] * 4
        found = metrics(address)
        assert found["kunlun_serve_batch_size_bucket{le=1.0,model=standin}"] < \
            found["kunlun_serve_batch_size_count{model=standin}"] < 4                 # merged
        assert found["kunlun_serve_inferences_total{model=standin}"] == 4
        values = [1.0, 2.0, POISON, 3.0, 4.0, 5.0]
        del built[0].runs[:]
        answers = concurrently(values)
        assert [a[0] for a in answers] == [500 if v == POISON else 200 for v in values]
        assert built[0].runs[0] > 1                                    # merged, failed, then each alone
        for v, (status, _, content) in zip(values, answers):
            if status == 200:
                np.testing.assert_allclose(json.loads(content)["outputs"][0]["data"],
                                           expected([[v] * 4])["y"].reshape(-1), rtol=1e-6)


def test_a_full_queue_answers_503_with_retry_after():
    with serving(workers=1, queue_size=1, delay=0.3, max_batch_size=2) as (address, _, _):
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: call(address, "POST", "/v2/models/standin/infer", infer_body()),
                                    range(4)))
        full = [a for a in answers if a[0] == 503]
        assert full and all(a[1]["retry-after"] == "1" and "--queue-size" in json.loads(a[2])["error"] for a in full)
        assert any(a[0] == 200 for a in answers)
        ok(address)


class TopLabel:
    """A STAND-IN task handler: JSON {"values": [4 numbers]} -> the label, through the model."""

    def predict(self, body, content_type, infer):
        try:
            values = json.loads(body)["values"]
        except (ValueError, KeyError, TypeError):
            raise BadRequest('expected JSON {"values": [4 numbers]}') from None
        outputs = infer({"x": np.asarray([values], np.float32)})
        return {"label": int(outputs["label"][0]), "content_type": content_type}


def test_the_task_route_calls_its_handler():
    with serving(handler=TopLabel()) as (address, _, _):
        status, _, content = call(address, "POST", "/v2/models/standin/predict", {"values": [4, 3, 2, 1]},
                                  {"content-type": "application/json"})
        assert status == 200 and json.loads(content) == {"label": int(expected([[4, 3, 2, 1]])["label"][0]),
                                                         "content_type": "application/json"}
        status, _, content = call(address, "POST", "/v2/models/standin/predict", b"\x89PNG not json")
        assert status == 400 and "expected JSON" in json.loads(content)["error"]
        assert metrics(address)["kunlun_serve_requests_total{code=200,model=standin,route=predict}"] == 1
        ok(address)
    with serving() as (address, _, _):
        status, _, content = call(address, "POST", "/v2/models/standin/predict", b"x")
        assert status == 404 and "no task route" in json.loads(content)["error"]


class Scores:
    """A task route answering the model's raw scores, as classification's does."""

    def predict(self, body, content_type, infer):
        return {"scores": infer({"x": np.asarray([json.loads(body)], np.float32)})["y"][0].tolist()}


def test_a_model_answering_nan_is_a_clear_500_and_binary_outputs_still_carry_it():
    overflow = [3e38] * 4          # finite in float32, but x @ W overflows to Inf
    with serving(handler=Scores()) as (address, _, _):
        status, _, content = call(address, "POST", "/v2/models/standin/infer", infer_body(1, 3e38))
        assert status == 500
        assert json.loads(content)["error"].startswith("output 'y' holds NaN or Inf, which JSON cannot carry")
        status, headers, content = call(address, "POST", "/v2/models/standin/infer",
                                        infer_body(1, 3e38, outputs=[{"name": "y", "parameters": {"binary_data": True}}]))
        assert status == 200
        head = int(headers["inference-header-content-length"])
        assert not np.isfinite(np.frombuffer(content[head:], "<f4")).all()
        status, _, content = call(address, "POST", "/v2/models/standin/predict", json.dumps(overflow).encode())
        assert status == 500 and "training may have diverged" in json.loads(content)["error"]
        ok(address)
        assert metrics(address)["kunlun_serve_requests_total{code=500,model=standin,route=predict}"] == 1


def test_sigterm_under_load_answers_every_request_received():
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--port", "0", "--delay-ms", "40", "--max-wait-ms", "5",
                             "--drain-seconds", "10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        address = re.search(r"http://(\S+) ", proc.stdout.readline()).group(1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if call(address, "GET", "/v2/health/ready")[0] == 200:
                    break
            time.sleep(0.05)
        answered, refused, stop = [], [], threading.Event()

        def client():
            for _ in range(200):                      # bounded: at most 200 requests per client
                if stop.is_set():
                    return
                try:
                    answered.append(call(address, "POST", "/v2/models/standin/infer", infer_body())[0])
                except OSError as e:                 # not accepted: the listener is closed
                    refused.append(type(e).__name__)
                    return
        clients = [threading.Thread(target=client) for _ in range(8)]
        for t in clients:
            t.start()
        time.sleep(0.6)
        before = len(answered)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        drained = time.monotonic() - signalled
        stop.set()
        for t in clients:
            t.join(10)
        out = proc.stdout.read()
    finally:
        proc.kill()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["event"] == "serve summary" and summary["signal"] == "SIGTERM"
    assert summary["unanswered"] == 0 and summary["requests"] == summary["answered"] == len(answered)
    assert before > 0 and len(answered) > before and set(answered) <= {200, 503}
    assert answered.count(200) >= before and drained < 5, (drained, out)


def self_test(*args: str) -> tuple[int, dict, str]:
    """`serve --self-test`'s run with the stand-in model, in a process of its own (it signals itself)."""
    result = subprocess.run([sys.executable, str(STANDIN), "--self-test", *args], capture_output=True, text=True,
                            timeout=60)
    summary = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"event": "summary"')]
    assert len(summary) == 1, result.stdout + result.stderr
    return result.returncode, summary[0], result.stdout


@pytest.mark.parametrize("route", ["infer", "predict"])
def test_the_self_test_asks_the_server_once_and_stops_it_cleanly(route):
    """What `invoke publish` runs in a serving image, network off: ready, one request, SIGTERM, exit 0.
    Without a task route the request is V2 tensors shaped by the model's metadata; with an image route,
    a generated PNG (the stand-in route checks it is one)."""
    code, summary, out = self_test(*(["--image-route"] if route == "predict" else []))
    assert code == 0 and summary["passed"] is True, out
    assert summary["route"] == f"/v2/models/standin/{route}" and summary["status"] == 200
    assert summary["outputs"] == (["y", "label"] if route == "infer" else ["label", "png_bytes"])
    assert '"requests": 1, "answered": 1, "unanswered": 0, "signal": "SIGTERM"' in out   # drained as on `docker stop`


def test_a_model_that_cannot_start_fails_the_self_test_with_its_reason():
    code, summary, _ = self_test("--broken")
    assert code == 1 and summary["passed"] is False
    assert "could not start" in summary["error"] and "a model that cannot run" in summary["error"]


def test_the_self_test_flags():
    args = cli.parser().parse_args(["--self-test"])
    assert args.self_test and args.self_test_timeout == 600 and args.max_batch_size is None   # 1 is applied in serve()
    assert "--self-test" in cli.parser().format_help()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["--model", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert cli.main(["--model", str(tmp_path)]) == 2
    assert "expected inference.json and inference.pdiparams" in capsys.readouterr().err
    for name in ("inference.json", "inference.pdiparams"):
        (tmp_path / name).write_text("{}")
    assert cli.main(["--model", str(tmp_path)]) == 2
    assert "no inference.yml" in capsys.readouterr().err
    (tmp_path / "inference.yml").write_text(json.dumps({"Global": {"model": "resnet50"}}))
    assert cli.model_name(tmp_path, None) == "resnet50" and cli.model_name(tmp_path, "x") == "x"
    (tmp_path / "inference.yml").write_text("Global: [")
    assert cli.main(["--model", str(tmp_path)]) == 2
    assert "no Global.model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--workers", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    help_text = cli.parser().format_help()
    for flag in ("--model", "--port", "--host", "--workers", "--threads", "--max-batch-size", "--max-wait-ms",
                 "--queue-size", "--max-body-bytes", "--drain-seconds", "--name", "/v2/models/NAME/infer"):
        assert flag in help_text


def test_predictors_fit_the_container():
    cpu = backend.plan(None, None, xpus=[], paddle_has_xpu=False, cpus=(4, "4 CPUs in the affinity mask"))
    assert (cpu.device, cpu.workers, cpu.threads) == ("cpu", 1, 4)
    assert backend.plan(2, None, xpus=[], paddle_has_xpu=False, cpus=(4, "")).threads == 2
    with pytest.raises(backend.TrainError, match="2 x --threads 3 = 6 threads, but this container may use 4"):
        backend.plan(2, 3, xpus=[], paddle_has_xpu=False, cpus=(4, "CPU quota of 4 CPUs"))
    xpu = backend.plan(None, None, xpus=["2", "3"], paddle_has_xpu=True, cpus=(8, ""))
    assert (xpu.device, xpu.workers, xpu.cards) == ("xpu", 2, (0, 1))   # Paddle numbers visible cards from 0
    with pytest.raises(backend.TrainError, match="one predictor per card"):
        backend.plan(3, None, xpus=["0"], paddle_has_xpu=True, cpus=(8, ""))
