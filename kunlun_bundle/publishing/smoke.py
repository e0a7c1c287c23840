"""The smoke test every image passes before it is pushed, network off, its kind's (kinds.Smoke): a model
image trains 1 step and its summary line says the loss is finite; a serving image starts its server,
answers one inference (`serve --self-test`) and its summary line says passed. Passes are remembered in
the report directory, so a rerun of an interrupted publish does not test the same image again (under
emulation that is minutes per image)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..containers import container
from ..errors import PublishError
from .plan import ArchImage


def smoke_test(client, a: ArchImage, extra_args: list[str] = ()) -> Optional[str]:
    """The image's kind's smoke test, network off; None if it passed, else why not."""
    test = a.layer.kind.smoke
    try:
        running = container.start(client, a.local_id, [*test.args, *extra_args], error=PublishError,
                                  network_mode="none", platform=a.platform, labels={"io.kunlun.publish": "smoke"})
    except PublishError as exc:
        return exc.message
    with running:
        try:
            code = running.wait(test.timeout)
        except PublishError as exc:
            return exc.message
        output = running.output()
    summary = next((json.loads(line) for line in output.splitlines() if line.startswith('{"event": "summary"')), None)
    if code != 0 or summary is None or not summary.get(test.passed_key):
        tail = " | ".join(output.strip().splitlines()[-3:])
        return f"exit {code}{'' if summary else ', no summary line'}: {tail[-300:]}"
    return None


class SmokeRecord:
    """Smoke tests passed in this run, by local image id and arguments, kept in the report directory: a run
    that was interrupted and is started again with the same report directory is the same run."""

    def __init__(self, report_dir: Path):
        self.path = report_dir / "smoke-passed.json"
        self.passed = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def key(self, a: ArchImage, extra_args: list[str]) -> str:
        return " ".join([a.local_id, *extra_args])

    def has(self, a: ArchImage, extra_args: list[str]) -> bool:
        return self.key(a, extra_args) in self.passed

    def add(self, a: ArchImage, extra_args: list[str], seconds: float) -> None:
        self.passed[self.key(a, extra_args)] = {"image": a.local, "seconds": seconds}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.passed, indent=2, sort_keys=True) + "\n")
