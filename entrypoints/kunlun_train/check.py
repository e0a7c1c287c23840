"""`docker run kunlun/<model> check`: one environment stamp, the first thing to ask for when a
Kunlun job misbehaves (users run xpu_smi, lspci, ls -l /dev/xpu* and paddle.utils.run_check() by hand):

  Paddle version and commit; for XPU builds the runtime (XRE), collective (XCCL/BKCL) and XHPC versions
  Paddle was built with, the driver version the host reports; the device nodes and whether this user
  can open them; the cards visible to this container; the image's flavour; and `run_check()`.

The stamp without run_check (which trains a small model) also goes into the training summary."""
from __future__ import annotations

import os
from pathlib import Path

from . import device

DRIVER_VERSION = Path("/proc/xpu/version")


def nodes(dev: Path = Path("/dev")) -> dict[str, str]:
    """{node: 'rw' | 'ro' | 'no access' | error} for /dev/xpu* (the cards and xpuctrl), by opening them."""
    found = {}
    for path in sorted(dev.glob("xpu*")):
        try:
            with open(path, "rb+", buffering=0):
                found[str(path)] = "rw"
        except PermissionError:
            found[str(path)] = "ro" if os.access(path, os.R_OK) else "no access"
        except OSError as exc:
            found[str(path)] = f"cannot open: {exc.strerror}"
    return found


def stamp(paddle, dev: Path = Path("/dev")) -> dict:
    version = paddle.version
    xpu = bool(paddle.is_compiled_with_xpu())
    out = {"paddle": version.full_version, "paddle_commit": version.commit, "compiled_with_xpu": xpu,
           "flavour": os.environ.get("KUNLUN_FLAVOUR", "cpu"), "visible_xpus": device.visible_xpus(dev=dev),
           "device_nodes": nodes(dev)}
    if xpu:
        for key in ("xpu", "xpu_xre", "xpu_xccl", "xpu_xhpc"):
            value = getattr(version, key, None)
            out[f"paddle_{key}"] = str(value()) if callable(value) else None
        out["xpu_count_paddle_sees"] = paddle.device.xpu.device_count() if hasattr(paddle.device, "xpu") else None
    out["driver"] = DRIVER_VERSION.read_text().strip() if DRIVER_VERSION.is_file() else None
    return out


def run(paddle, say) -> int:
    """Print the stamp, then run Paddle's own check; 0 when it passes."""
    import contextlib
    import io
    import json

    facts = stamp(paddle)
    for key, value in facts.items():
        say(f"check {key}: {value if value not in (None, {}, []) else '-'}")
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            paddle.utils.run_check()
        passed, detail = True, captured.getvalue().strip().splitlines()[-1:]
    except Exception as exc:   # run_check raises on a broken install or device: that is the answer
        passed, detail = False, [f"{type(exc).__name__}: {exc}"]
    say(f"check run_check: {'passed' if passed else 'FAILED'}" + (f" ({detail[0]})" if detail else ""))
    print(json.dumps({"event": "check", **facts, "run_check": "passed" if passed else "failed"}), flush=True)
    return 0 if passed else 1
