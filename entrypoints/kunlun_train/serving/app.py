"""The HTTP side: a Starlette app with the V2 routes and /metrics, served by uvicorn (h11, no extras).

Lifecycle: live as soon as the port is open; the predictors are built and warmed in a thread after
that, and the model is ready only when every worker has run every batch size. SIGTERM or SIGINT
turns ready off, stops accepting connections, waits for every request already received to be
answered (at most --drain-seconds), then stops the workers; a second signal exits at once.

Task routes: a model given a Handler also answers `POST /v2/models/{name}/predict` with
`handler.predict(body, content_type, infer)` -> a JSON-able dict, where `infer(inputs) -> outputs`
runs arrays through the same queue and predictors as /infer. A handler raises protocol.BadRequest
for the client's mistakes (400, or its `status`)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import protocol
from .batching import Batcher, QueueFull, RunError, Stopped
from .protocol import NOT_FINITE_HINT, BadRequest, ModelSpec, NotFinite

VERSION = "1"
LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Handler(Protocol):
    """A task's pre- and post-processing around the model (files in, what `predict` prints out)."""

    def predict(self, body: bytes, content_type: str,
                infer: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict: ...


class Metrics:
    """Prometheus histograms (they aggregate across replicas, summaries don't) in a registry of
    their own, so several apps can live in one process."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.request_seconds = Histogram("kunlun_serve_request_duration_seconds", "Inference request time, "
                                         "body read to response", ["model", "route", "code"], buckets=LATENCY, registry=r)
        self.requests = Counter("kunlun_serve_requests", "Inference requests answered",
                                ["model", "route", "code"], registry=r)
        self.queue_seconds = Histogram("kunlun_serve_queue_duration_seconds", "Time a request waited for a "
                                       "predictor", ["model"], buckets=LATENCY, registry=r)
        self.compute_seconds = Histogram("kunlun_serve_compute_duration_seconds", "Predictor run time per "
                                         "batch", ["model"], buckets=LATENCY, registry=r)
        self.batch_size = Histogram("kunlun_serve_batch_size", "Rows per predictor run", ["model"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.inferences = Counter("kunlun_serve_inferences", "Rows inferred (a batch of n counts n)",
                                  ["model"], registry=r)
        self.executions = Counter("kunlun_serve_executions", "Predictor runs", ["model"], registry=r)
        self.ready_gauge = Gauge("kunlun_serve_model_ready", "1 when the model is ready", ["model"], registry=r)

    def queued(self, model: str, seconds: float) -> None:
        self.queue_seconds.labels(model).observe(seconds)

    def computed(self, model: str, rows: int, requests: int, seconds: float) -> None:
        self.compute_seconds.labels(model).observe(seconds)
        self.batch_size.labels(model).observe(rows)
        self.inferences.labels(model).inc(rows)
        self.executions.labels(model).inc()

    def ready(self, model: str, ready: bool) -> None:
        self.ready_gauge.labels(model).set(1 if ready else 0)

    def answered(self, model: str, route: str, code: int, seconds: float) -> None:
        self.request_seconds.labels(model, route, str(code)).observe(seconds)
        self.requests.labels(model, route, str(code)).inc()


@dataclass
class Model:
    """A served model: its batcher (queue + predictors), and optionally a task handler. The backends
    say their tensors (`inputs`, `outputs`: protocol.TensorSpec) and `platform` once built."""
    name: str
    batcher: Batcher
    handler: Handler | None = None

    @property
    def spec(self) -> ModelSpec:
        backend = next(b for b in self.batcher.backends if b is not None)
        return ModelSpec(self.name, getattr(backend, "platform", "unknown"), tuple(backend.inputs),
                         tuple(backend.outputs), (VERSION,))


@dataclass
class Service:
    """What the app serves and the state of its lifecycle (shared by the routes and `run`)."""
    models: dict[str, Model]
    max_body_bytes: int = 64 << 20
    metrics: Metrics = field(default_factory=Metrics)
    say: Callable[[str], None] = lambda text: print(text, flush=True)
    loaded = False
    draining = False
    failed: str | None = None
    received = 0          # inference requests whose handling began
    answered = 0          # ... and got a response (any status)

    def __post_init__(self):
        for model in self.models.values():
            model.batcher.metrics = self.metrics
            self.metrics.ready(model.name, False)

    def load(self) -> bool:
        """Build and warm every model's predictors; False (and `failed` says why) if any could not."""
        started = time.monotonic()
        for model in self.models.values():
            if not model.batcher.start():
                self.failed = f"model '{model.name}' could not start: {'; '.join(model.batcher.errors)}"
                return False
            b = model.batcher
            self.say(f"[{model.name}] ready: {b.workers} worker(s), batch sizes 1..{b.max_batch_size} warmed, "
                     f"batching {'on, ' + format(b.max_wait * 1000, 'g') + ' ms' if b.batching else 'off'} "
                     f"({time.monotonic() - started:.1f} s)")
        self.loaded = True
        return True

    @property
    def ready(self) -> bool:
        return self.loaded and not self.draining and all(m.batcher.ready for m in self.models.values())

    def begin_drain(self) -> None:
        self.draining = True
        for model in self.models.values():
            self.metrics.ready(model.name, False)

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all([m.batcher.drain(max(0.0, deadline - time.monotonic())) for m in self.models.values()])


def _error(message: str, status: int, headers: dict | None = None) -> Response:
    return Response(protocol.error_body(message), status, headers, media_type="application/json")


def create_app(service: Service, lifespan=None) -> Starlette:
    def lookup(request: Request) -> Model:
        name, version = request.path_params["name"], request.path_params.get("version")
        model = service.models.get(name)
        if model is None:
            raise BadRequest(f"unknown model '{name}': this server serves {', '.join(service.models)}", 404)
        if version is not None and version != VERSION:
            raise BadRequest(f"model '{name}' has no version '{version}' (versions: {VERSION})", 404)
        return model

    async def body_of(request: Request) -> bytes:
        """The body, refused with 413 as soon as it exceeds the limit (before reading it all)."""
        limit = service.max_body_bytes
        too_big = BadRequest(f"request body larger than {limit} bytes (--max-body-bytes)", 413)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    def check_ready(model: Model) -> None:
        if service.draining:
            raise BadRequest("shutting down: not accepting new requests", 503)
        if not model.batcher.ready:
            raise BadRequest(f"model '{model.name}' is not ready (its predictors are starting)", 503)

    async def answer(request: Request, route: str, work) -> Response:
        """Run one inference route with the request counted, timed and its errors mapped to codes."""
        service.received += 1
        started, label, code = time.monotonic(), "", 500
        try:
            model = lookup(request)
            label = model.name
            check_ready(model)
            response = await work(model, await body_of(request))
        except BadRequest as e:
            response = _error(str(e), e.status)
        except QueueFull as e:
            response = _error(str(e), 503, {"Retry-After": "1"})
        except Stopped as e:
            response = _error(str(e), 503)
        except (RunError, NotFinite) as e:
            response = _error(str(e), 500)
        code = response.status_code
        service.metrics.answered(label, route, code, time.monotonic() - started)
        service.answered += 1
        return response

    async def infer(request: Request) -> Response:
        async def work(model: Model, body: bytes) -> Response:
            spec = model.spec
            parsed = await run_in_threadpool(protocol.parse_request, body, spec,
                                             request.headers.get(protocol.HEADER_LENGTH))
            outputs = await asyncio.wrap_future(model.batcher.submit(parsed.inputs))
            content, headers = await run_in_threadpool(
                protocol.encode_response, model.name, parsed, outputs,
                request.path_params.get("version"))
            return Response(content, 200, headers)
        return await answer(request, "infer", work)

    async def predict(request: Request) -> Response:
        async def work(model: Model, body: bytes) -> Response:
            if model.handler is None:
                raise BadRequest(f"model '{model.name}' has no task route: POST tensors to "
                                 f"/v2/models/{model.name}/infer", 404)
            if not body:
                raise BadRequest("empty body: expected the input (an image, or JSON)")

            def infer(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return model.batcher.submit(inputs).result()
            result = await run_in_threadpool(model.handler.predict, body,
                                             request.headers.get("content-type", ""), infer)
            try:
                return JSONResponse(result)
            except ValueError:      # JSONResponse refuses NaN and Inf (allow_nan=False)
                raise NotFinite(f"the task's answer holds NaN or Inf, which JSON cannot carry: "
                                f"{NOT_FINITE_HINT}") from None
        return await answer(request, "predict", work)

    async def live(request: Request) -> Response:
        return Response(status_code=200)

    async def ready(request: Request) -> Response:
        if service.ready:
            return Response(status_code=200)
        return _error("shutting down" if service.draining else (service.failed or "starting: predictors "
                      "are being built and warmed"), 503)

    async def model_ready(request: Request) -> Response:
        try:
            check_ready(lookup(request))
        except BadRequest as e:
            return _error(str(e), e.status)
        return Response(status_code=200)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(protocol.server_metadata(VERSION))

    async def model_metadata(request: Request) -> Response:
        try:
            model = lookup(request)
            if not model.batcher.warmed:
                raise BadRequest(f"model '{model.name}' is starting: its tensors are known once a "
                                 "predictor is built", 503)
        except BadRequest as e:
            return _error(str(e), e.status)
        return JSONResponse(model.spec.metadata())

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.metrics.registry), headers={"content-type": CONTENT_TYPE_LATEST})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(f"{exc.detail}: {request.method} {request.url.path}", exc.status_code)

    routes = [Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server_metadata),
              Route("/metrics", metrics)]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [Route(base, model_metadata), Route(base + "/ready", model_ready),
                   Route(base + "/infer", infer, methods=["POST"]), Route(base + "/predict", predict, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)


# --- running it ---------------------------------------------------------------------------------------

def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts so port 0 (tests) has a known number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run(service: Service, sock: socket.socket, drain_seconds: float = 20.0, log_level: str = "warning") -> int:
    """Serve until SIGTERM/SIGINT (then drain) or a failed start; 0 when every request was answered."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):   # ours (below): uvicorn's would re-raise the signal and exit non-zero
            yield

    state = {"signal": None, "deadline": None}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        def load():
            if not service.load():
                service.say(f"error: {service.failed}")
                server.should_exit = True
        threading.Thread(target=load, name="load", daemon=True).start()
        yield
        left = (state["deadline"] - time.monotonic()) if state["deadline"] else drain_seconds
        state["drained"] = await asyncio.to_thread(service.drain, max(0.5, left))

    app = create_app(service, lifespan)
    config = uvicorn.Config(app, http="h11", ws="none", loop="asyncio", lifespan="on", log_level=log_level,
                            access_log=False, timeout_graceful_shutdown=drain_seconds)
    server = Server(config)

    def stop(sig: signal.Signals) -> None:
        if state["signal"] is not None:
            server.force_exit = True
            return
        state["signal"], state["deadline"] = sig, time.monotonic() + drain_seconds
        service.begin_drain()
        service.say(f"{sig.name}: not ready; finishing {service.received - service.answered} request(s) "
                    f"in progress (at most {drain_seconds:g} s)")
        server.should_exit = True

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        await server.serve(sockets=[sock])

    host, port = sock.getsockname()[:2]
    service.say(f"listening on http://{host}:{port} (V2 protocol: /v2/models/{{name}}/infer, /metrics)")
    asyncio.run(main())
    lost = service.received - service.answered
    service.say(json.dumps({"event": "serve summary", "requests": service.received, "answered": service.answered,
                            "unanswered": lost, "signal": state["signal"].name if state["signal"] else None}))
    if service.failed:
        return 1
    return 0 if lost == 0 and state.get("drained", True) else 1
