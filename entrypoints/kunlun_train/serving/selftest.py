"""`serve --self-test`: the server as `serve` runs it, on loopback, asked once as a client would, then
stopped the way `docker stop` stops it. What `invoke publish` runs (network off) before it pushes a
serving image, so a pushed image is known to answer, not only to build.

Steps: listen on 127.0.0.1 (an ephemeral port, so loopback is all it needs), poll GET /v2/health/ready
until 200, send one request, SIGTERM itself (the server drains and stops), then print one JSON line
`{"event": "summary", "passed": ..., ...}` and exit 0 only if the request got a 200 with outputs and the
server stopped cleanly. The request: a model with an image task route (classification, detection,
segmentation) gets a generated PNG on POST /v2/models/NAME/predict, the whole path a client's image
takes (decode, the export's pre-processing, the model, the task's post-processing); any other model
gets zeros shaped by its own metadata (GET /v2/models/NAME) on POST /v2/models/NAME/infer."""
from __future__ import annotations

import http.client
import json
import os
import signal
import struct
import threading
import time
import zlib

from . import app, protocol

SIZE = 64      # the generated image's side: every task's pre-processing resizes it to the export's size


def png(width: int = SIZE, height: int = SIZE) -> bytes:
    """An RGB gradient as a PNG file, with the standard library only (no imaging package needed)."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 255 // max(1, width - 1),
                                                                         y * 255 // max(1, height - 1), 128))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def call(port: int, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
         timeout: float = 600) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, {"Content-Type": content_type} if body is not None else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def request_for(model: app.Model, port: int) -> tuple[str, bytes, str]:
    """(route, body, content type) of the one request: the image task route, else V2 tensors from the metadata."""
    base = f"/v2/models/{model.name}"
    if model.handler is not None and getattr(model.handler, "body", None) == "image":
        return f"{base}/predict", png(), "image/png"
    status, content = call(port, "GET", base)
    if status != 200:
        raise RuntimeError(f"GET {base}: {status} {content[:200]!r}")
    inputs = tuple(protocol.TensorSpec(t["name"], t["datatype"], tuple(t["shape"])) for t in json.loads(content)["inputs"])
    arrays = protocol.example_inputs(inputs, 1)
    body = {"inputs": [{"name": t.name, "shape": list(arrays[t.name].shape), "datatype": t.datatype,
                        "data": [v.decode() if isinstance(v, bytes) else v for v in arrays[t.name].reshape(-1).tolist()]}
                       for t in inputs]}
    return f"{base}/infer", json.dumps(body).encode(), "application/json"


def outputs_of(route: str, content: bytes) -> list[str]:
    """The names of what came back: the V2 outputs, or the task route's keys; [] if nothing did."""
    answer = json.loads(content)
    if route.endswith("/infer"):
        return [o["name"] for o in answer.get("outputs") or [] if o.get("data") is not None]
    return sorted(answer) if isinstance(answer, dict) else []


def probe(service: app.Service, port: int, timeout: float, result: dict) -> None:
    """The client: wait until ready, send the request, record what happened, then stop the server."""
    started = time.monotonic()
    try:
        while True:
            if service.failed:      # the server stops itself; its error is the reason
                result["error"] = service.failed
                return
            try:
                if call(port, "GET", "/v2/health/ready", timeout=10)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - started > timeout:
                result["error"] = f"not ready within {timeout:g} s (--self-test-timeout)"
                return
            time.sleep(0.5)   # gently: under emulation each poll costs the warming server CPU
        result["ready_seconds"] = round(time.monotonic() - started, 1)
        [model] = service.models.values()
        route, body, content_type = request_for(model, port)
        sent = time.monotonic()
        status, content = call(port, "POST", route, body, content_type, timeout=max(30.0, timeout))
        result.update(route=route, status=status, request_seconds=round(time.monotonic() - sent, 2))
        if status != 200:
            result["error"] = f"POST {route}: {status} {content[:300].decode(errors='replace')}"
            return
        result["outputs"] = outputs_of(route, content)
        if not result["outputs"]:
            result["error"] = f"POST {route}: 200 without outputs: {content[:300].decode(errors='replace')}"
    except Exception as exc:   # anything: it is the test's verdict, not a crash
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if not service.failed:
            os.kill(os.getpid(), signal.SIGTERM)   # as `docker stop`: the server drains and exits


def run(service: app.Service, sock, drain_seconds: float, timeout: float) -> int:
    """Serve on `sock` (loopback) until the probe has asked once; print the summary line; 0 if it passed."""
    started = time.monotonic()
    port = sock.getsockname()[1]
    result: dict = {}
    client = threading.Thread(target=probe, args=(service, port, timeout, result), name="self-test", daemon=True)
    client.start()
    code = app.run(service, sock, drain_seconds)
    client.join(10)
    passed = code == 0 and not result.get("error") and bool(result.get("outputs"))
    if code and not result.get("error"):
        result["error"] = service.failed or f"the server exited {code}"
    print(json.dumps({"event": "summary", "self_test": True, "passed": passed, "model": next(iter(service.models)),
                      **result, "seconds": round(time.monotonic() - started, 1)}), flush=True)
    return 0 if passed else 1
