"""Same commit, same bytes: a chain built from scratch again (its own cache, the install stages without
Docker's cache, every image assembled anew) has the same image ids, layer by layer. Here the suite and
model layers; test_offline.py rebuilds the base and framework the same way, from an imported bundle with
no network, and checks them against the built ones. And a step that writes something different every
build is caught, the check naming the layer and the file. Also: an unchanged rebuild finds every image
it made, in seconds."""
from __future__ import annotations

import shutil
import time

import pytest

from kunlun_bundle import matrix
from kunlun_bundle.images import chain, render, repro
from kunlun_bundle.images.build import build_layers

from .helpers import ROOT, docker, invoke



@pytest.fixture(scope="module")
def built(build):
    build("resnet50", "dqn")


def test_the_resnet50_chain_built_again_from_scratch_is_identical(built):
    started = time.monotonic()
    result = invoke("repro", "--model", "resnet50", "--against-built", "--start", "suite")
    print(f"\nrepro of the ResNet50 chain's suite and model against the built ones: {time.monotonic() - started:.0f} s")
    assert "reproducible: 4 image(s) identical" in result.stderr


def test_an_unchanged_rebuild_finds_every_image_in_seconds(built):
    started = time.monotonic()
    result = invoke("build", "--model", "resnet50")
    seconds = time.monotonic() - started
    assert "0 built, 4 cached" in result.stderr
    print(f"\nno-op rebuild of the ResNet50 chain: {seconds:.1f} s")


def test_a_step_that_writes_the_date_is_named_with_its_layer_and_file(built, tmp_path):
    """The suite template gains a step that records the time of the build; two builds of the
    smallest suite (PARL's, under DQN) then differ in that file, and only there. The first build is
    an ordinary `build` under a namespace of its own: Docker's cache holds every step of the chain
    but the new one, so only the date runs again; the second is repro's from-scratch pass against it."""
    copy = tmp_path / "repo"
    for name in ("templates", "locks", "patches", "entrypoints"):
        shutil.copytree(ROOT / name, copy / name)
    shutil.copy(ROOT / "matrix.yaml", copy / "matrix.yaml")
    template = copy / "templates/suite.Dockerfile.j2"
    text = template.read_text()
    marker = "\n{% include \"partials/final-stage.j2\" %}"
    template.write_text(text.replace(marker, "\nRUN date +%s%N > {{ suite_dir }}/built-at.txt\n" + marker, 1))
    m = matrix.load(copy / "matrix.yaml")
    m = m.model_copy(update={"namespace_override": f"{m.namespace}dated"})
    render.write(render.render_all(m, copy), copy)
    tops = chain.select(m, ["dqn"], None, [m.arch_registry.native()])
    layers = chain.unique_layers(tops)
    try:
        results = build_layers(m, layers, copy)
        assert {r.status for r in results.values()} <= {"built", "cached"}, results
        differences = repro.run(m, tops, copy, against_built=True, start="suite")   # the base and Paddle: as built
    finally:
        for layer in layers:
            docker("image", "rm", "--no-prune", layer.image, check=False)
    assert [d.cell for d in differences] == ["parl/cpu-x86_64"]
    report = differences[0].describe()
    assert differences[0].entries == ["/opt/kunlun/suites/parl/built-at.txt: content"], report
    assert "COPY --from=install /opt/kunlun/suites/parl /opt/kunlun/suites/parl" in report
