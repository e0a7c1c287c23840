"""Publishing to a real registry: Debian's docker-registry (distribution 2.8) on 127.0.0.1, with basic
auth, started for this module. A model for both archs is pushed, and one export's serving images
for both archs (last); the manifest lists, digests, labels and SBOMs are checked through the registry's
HTTP API and by pulling.

The images are the ones already built (`invoke build`): this module tags them under a namespace of
its own (its matrix copy says `kunlunpubtest`), so a rebuild elsewhere during the run cannot change
them, and only the publish layer (SBOM + labels) is built here. Smoke tests run with a small image
size: aarch64 runs under emulation. Docker allows plain HTTP to 127.0.0.0/8 registries by default
(`docker info`: Insecure Registries), so the daemon needs no configuration."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from .helpers import PUBLISH_NAMESPACE, ROOT, docker, image, invoke


pytestmark = pytest.mark.emulated   # both archs: conftest.py builds the aarch64 ones in the background
# One model: what is tested is the publishing of a cell, the same for every model (the plan of several
# cells is tests/test_publish.py's); each more is a smoke test under emulation and its pushes.
MODELS = ("resnet50",)
NAMESPACE = PUBLISH_NAMESPACE
TAG = "0.1.0-paddle3.2.2-cpu"
ARCHS = {"x86_64": "amd64", "aarch64": "arm64"}
SMOKE = ["--smoke-args", "-o Global.image_size=32"]
USER, PASSWORD = "kunlun-ci", "pw-" + secrets.token_hex(12)
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = f"{LIST}, application/vnd.docker.distribution.manifest.v2+json"


def htpasswd_line(user: str, password: str) -> str:
    """bcrypt, the only hash distribution's htpasswd accepts (glibc's crypt does bcrypt: no extra package)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str
    storage: Path

    def get(self, path: str, auth=(USER, PASSWORD), **headers) -> requests.Response:
        return requests.get(f"http://{self.host}/v2/{path}", auth=auth, headers=headers, timeout=30)

    def tags(self, name: str) -> list[str]:
        response = self.get(f"{name}/tags/list")
        return sorted(response.json().get("tags") or []) if response.status_code == 200 else []

    def manifest(self, name: str, ref: str) -> tuple[str, dict]:
        response = self.get(f"{name}/manifests/{ref}", Accept=ACCEPT)
        assert response.status_code == 200, (name, ref, response.status_code, response.text)
        return response.headers["Docker-Content-Digest"], response.json()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """docker-registry on 127.0.0.1:<free port>, basic auth, storage in a temporary directory."""
    binary = Path("/usr/bin/docker-registry")
    if not binary.exists():
        if os.getuid() != 0:
            pytest.fail("Debian's docker-registry is not installed: `sudo apt-get install docker-registry`")
        subprocess.run(["apt-get", "install", "-y", "-q", "docker-registry"], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    work = tmp_path_factory.mktemp("registry")
    (work / "htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    host = f"127.0.0.1:{free_port()}"
    (work / "config.yml").write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}, "delete": {"enabled": True}},
        "http": {"addr": host},
        "auth": {"htpasswd": {"realm": "kunlun-test", "path": str(work / "htpasswd")}},
    }))
    log = open(work / "registry.log", "w")
    server = subprocess.Popen([str(binary), "serve", str(work / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    reg = Registry(host, work / "data")
    for _ in range(100):
        try:
            if reg.get("", auth=None).status_code == 401:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"docker-registry did not start: {(work / 'registry.log').read_text()}")
    yield reg
    server.terminate()
    server.wait(timeout=30)
    log.close()
    # the local tags docker push left for this registry (untagging only: the images stay if used)
    refs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    mine = [r for r in refs if r.startswith(host + "/")]
    if mine:
        docker("rmi", *mine, check=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory, build):
    """A matrix copy with its own namespace, and the images built and tagged into it (both archs)."""
    build(*MODELS, arch="all")
    work = tmp_path_factory.mktemp("matrix")
    data = yaml.safe_load((ROOT / "matrix.yaml").read_text())
    data["bundle"]["namespace"] = NAMESPACE
    (work / "matrix.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (work / "patches").symlink_to(ROOT / "patches")
    made = []
    for model in MODELS:
        for arch in ARCHS:
            source, target = image(model, arch), f"{NAMESPACE}/{model}:{TAG}-{arch}"
            docker("tag", source, target)
            made.append(target)
    yield work / "matrix.yaml"
    docker("rmi", *[t for t in made if docker("image", "inspect", t, check=False).returncode == 0], check=False)


def publish(matrix: Path, *args, creds=True, docker_config: Path | None = None, popen=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUNLUN_REGISTRY_")}
    env["KUNLUN_MATRIX"] = str(matrix)
    env["KUNLUN_NAMESPACE"] = ""         # the copy's own namespace, not an override of it
    if creds:
        env.update(KUNLUN_REGISTRY_USER=USER, KUNLUN_REGISTRY_PASSWORD=PASSWORD)
    if docker_config:
        env["DOCKER_CONFIG"] = str(docker_config)
    cmd = [sys.executable, "-m", "invoke", "publish", *args]
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def expected_tags(model: str) -> list[str]:
    return sorted([f"{TAG}-x86_64", f"{TAG}-aarch64", TAG, "cpu", "paddleclas2.6.0-cpu", "latest"])


@pytest.fixture(scope="module")
def published(registry, images, tmp_path_factory):
    """Both models, both archs, pushed once with credentials from the environment."""
    report = tmp_path_factory.mktemp("report")
    start = time.monotonic()
    result = publish(images, "--registry", f"{registry.host}/main", *[a for m in MODELS for a in ("--model", m)],
                     "--push", "--report", str(report), *SMOKE)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, report, time.monotonic() - start


def test_each_manifest_list_has_both_platforms_and_pulls_by_digest_to_the_same_image(registry, published, tmp_path):
    result, report, seconds = published
    config = tmp_path / "docker-config"                  # pulls log in through a config of their own
    login = subprocess.run(["docker", "--config", str(config), "login", "-u", USER, "--password-stdin", registry.host],
                           input=PASSWORD, capture_output=True, text=True)
    assert login.returncode == 0, login.stderr
    for model in MODELS:
        name = f"main/{model}"
        assert registry.tags(name) == expected_tags(model)
        digest, doc = registry.manifest(name, TAG)
        assert doc["mediaType"] == LIST
        assert sorted((m["platform"]["os"], m["platform"]["architecture"]) for m in doc["manifests"]) == \
            [("linux", "amd64"), ("linux", "arm64")]
        for moving in ("latest", "cpu", "paddleclas2.6.0-cpu"):
            assert registry.manifest(name, moving)[0] == digest
        for entry in doc["manifests"]:
            arch = {v: k for k, v in ARCHS.items()}[entry["platform"]["architecture"]]
            per_arch_digest, image = registry.manifest(name, f"{TAG}-{arch}")
            assert per_arch_digest == entry["digest"]
            labels = registry.get(f"{name}/blobs/{image['config']['digest']}").json()["config"]["Labels"]
            assert labels["org.opencontainers.image.version"] == f"{TAG}-{arch}"
            assert labels["io.kunlun.smoke"] == "passed: trained 1 step" and labels["io.kunlun.arch"] == arch
            for key in ("source", "revision", "created", "title", "description", "licenses"):
                if key != "source" or os.environ.get("KUNLUN_SOURCE_URL"):
                    assert labels[f"org.opencontainers.image.{key}"], key
            for key in ("paddle.version", "suite", "suite.version", "lock.paddleclas.sha256", "flavour"):
                assert labels[f"io.kunlun.{key}"], key
            ref = f"{registry.host}/{name}@{entry['digest']}"
            pull = subprocess.run(["docker", "--config", str(config), "pull", ref], capture_output=True, text=True)
            assert pull.returncode == 0, pull.stderr
            pulled = json.loads(docker("image", "inspect", ref).stdout)[0]
            pushed = json.loads(docker("image", "inspect", f"{registry.host}/{name}:{TAG}-{arch}").stdout)[0]
            assert pulled["Id"] == pushed["Id"] == image["config"]["digest"]
            assert pulled["Architecture"] == ARCHS[arch]
    print(f"\npublish of {len(MODELS)} models x 2 archs took {seconds:.0f} s")
    for cell in json.loads((report / "report.json").read_text())["cells"]:
        for a in cell["archs"]:
            print(f"  {cell['name']} {a['arch']}: {a['seconds']}")


def test_the_sbom_is_in_the_image_and_next_to_the_report(registry, published):
    _, report, _ = published
    doc = json.loads((report / "report.json").read_text())
    assert {c["name"]: c["status"] for c in doc["cells"]} == {f"{m}/cpu": "published" for m in MODELS}
    for model in MODELS:
        for arch in ARCHS:
            here = report / "sbom" / model / f"cpu-{arch}"
            cdx = json.loads((here / "python.cdx.json").read_text())
            assert cdx["bomFormat"] == "CycloneDX" and cdx["specVersion"] == "1.5"
            names = {c["name"].lower() for c in cdx["components"]}
            assert {"paddlepaddle", "numpy", "paddleclas"} <= names
            assert any(c.get("hashes") for c in cdx["components"] if c["name"].lower() == "paddlepaddle")
            assert any(line.startswith("python3\t") for line in (here / "os-packages.txt").read_text().splitlines())
            print(f"\nSBOM {model}/{arch}: {(here / 'python.cdx.json').stat().st_size} B python, "
                  f"{(here / 'os-packages.txt').stat().st_size} B os, {len(cdx['components'])} components")
    image = f"{registry.host}/main/resnet50:{TAG}-x86_64"
    inside = docker("run", "--rm", "--network", "none", "--entrypoint", "cat", image,
                    "/opt/kunlun/sbom/python.cdx.json").stdout
    assert inside == (report / "sbom/resnet50/cpu-x86_64/python.cdx.json").read_text()


def test_credentials_appear_in_no_log_report_layer_or_history(registry, published):
    result, report, _ = published
    assert PASSWORD not in result.stdout + result.stderr
    for path in report.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path
    for model in MODELS:
        for arch in ARCHS:
            image = f"{registry.host}/main/{model}:{TAG}-{arch}"
            assert PASSWORD not in docker("history", "--no-trunc", image).stdout
            assert PASSWORD not in docker("image", "inspect", image).stdout
            assert USER not in docker("image", "inspect", image).stdout


def test_publishing_again_changes_nothing(registry, images, published, tmp_path):
    before = {m: registry.manifest(f"main/{m}", TAG)[0] for m in MODELS}
    result = publish(images, "--registry", f"{registry.host}/main", *[a for m in MODELS for a in ("--model", m)],
                     "--push", "--report", str(tmp_path), *SMOKE)
    assert result.returncode == 0, result.stderr
    assert "smoke test" not in result.stderr and "> push" not in result.stderr   # nothing trained or pushed again
    assert {m: registry.manifest(f"main/{m}", TAG)[0] for m in MODELS} == before
    for model in MODELS:
        assert registry.tags(f"main/{model}") == expected_tags(model)


def test_without_credentials_it_fails_clearly_and_with_the_docker_config_it_works(registry, images, published, tmp_path):
    empty = tmp_path / "empty-config"
    empty.mkdir()
    result = publish(images, "--registry", f"{registry.host}/main", "--model", "resnet50", "--push",
                     creds=False, docker_config=empty)
    assert result.returncode == 10, result.stderr
    assert f"registry {registry.host} requires credentials and none were given" in result.stderr
    assert "KUNLUN_REGISTRY_USER" in result.stderr and "Traceback" not in result.stderr

    config = tmp_path / "login-config"
    login = subprocess.run(["docker", "--config", str(config), "login", "-u", USER, "--password-stdin", registry.host],
                           input=PASSWORD, capture_output=True, text=True)
    assert login.returncode == 0, login.stderr
    result = publish(images, "--registry", f"{registry.host}/main", "--model", "resnet50", creds=False,
                     docker_config=config)
    assert result.returncode == 0, result.stderr
    assert "present" in result.stdout and PASSWORD not in result.stdout + result.stderr


def test_wrong_credentials_are_refused_by_name(registry, images):
    env_user, env_password = "intruder", "not-the-password"
    result = subprocess.run([sys.executable, "-m", "invoke", "publish", "--registry", f"{registry.host}/main",
                             "--model", "resnet50"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "KUNLUN_MATRIX": str(images), "KUNLUN_REGISTRY_USER": env_user,
                                 "KUNLUN_REGISTRY_PASSWORD": env_password})
    assert result.returncode == 10
    assert "refused the credentials of user 'intruder'" in result.stderr and env_password not in result.stderr


def test_an_interrupted_push_rerun_finishes_without_duplicating_or_losing_tags(registry, images, published, tmp_path):
    """Killed while pushing the second arch's image; the same command again completes the set. The
    report directory starts with the smoke tests `published` passed (the same local images and
    arguments), as a rerun of one publish would: what is tested here is the push, not training again
    (under emulation that is most of a minute)."""
    _, report, _ = published
    shutil.copy(report / "smoke-passed.json", tmp_path / "smoke-passed.json")
    args = ["--registry", f"{registry.host}/resume", "--model", "resnet50", "--push", "--report", str(tmp_path), *SMOKE]
    first = publish(images, *args, popen=True)
    seen = []
    for line in first.stderr:
        seen.append(line)
        if line.startswith("> push") and "aarch64" in line:
            time.sleep(1.0)
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(seen)
    partial = registry.tags("resume/resnet50")
    assert partial == [f"{TAG}-x86_64"], partial                        # one image in, no list yet
    x86_digest = registry.manifest("resume/resnet50", f"{TAG}-x86_64")[0]

    again = publish(images, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"push {registry.host}/resume/resnet50:{TAG}-x86_64" not in again.stderr     # not pushed twice
    assert registry.tags("resume/resnet50") == expected_tags("resnet50")
    digest, doc = registry.manifest("resume/resnet50", TAG)
    assert len(doc["manifests"]) == 2 and {m["platform"]["architecture"] for m in doc["manifests"]} == {"amd64", "arm64"}
    assert x86_digest in {m["digest"] for m in doc["manifests"]}
    report = json.loads((tmp_path / "report.json").read_text())
    states = {a["arch"]: (a["state"], a["pushed"]) for a in report["cells"][0]["archs"]}
    assert states == {"x86_64": ("present", False), "aarch64": ("present", True)}


def test_the_gate_holds_back_a_cell_with_a_missing_arch_and_says_why(registry, images, tmp_path):
    image = f"{NAMESPACE}/resnet50:{TAG}-aarch64"
    image_id = json.loads(docker("image", "inspect", image).stdout)[0]["Id"]
    docker("rmi", image)                                   # only our tag: the image itself stays
    try:
        result = publish(images, "--registry", f"{registry.host}/gate", "--model", "resnet50", "--push",
                         "--report", str(tmp_path), *SMOKE)
    finally:
        docker("tag", image_id, image)
    assert result.returncode == 9, result.stderr
    assert f"resnet50/cpu: aarch64 missing: no local image {image}" in result.stderr
    assert "smoke test" not in result.stderr and "> push" not in result.stderr
    assert registry.tags("gate/resnet50") == []          # neither the list nor the x86_64 image
    cell = json.loads((tmp_path / "report.json").read_text())["cells"][0]
    assert cell["status"] == "blocked" and cell["reason"].startswith("aarch64 missing: no local image")


def test_an_immutable_tag_naming_another_image_is_refused_before_anything_is_pushed(registry, images, published):
    image = f"{NAMESPACE}/resnet50:{TAG}-x86_64"
    original = json.loads(docker("image", "inspect", image).stdout)[0]["Id"]
    docker("tag", f"{NAMESPACE}/resnet50:{TAG}-aarch64", image)      # a different image under the same tag
    try:
        before = registry.manifest("main/resnet50", f"{TAG}-x86_64")[0]
        result = publish(images, "--registry", f"{registry.host}/main", "--model", "resnet50", "--push", *SMOKE)
        assert result.returncode == 11, result.stderr
        assert f"{registry.host}/main/resnet50:{TAG}-x86_64 is sha256:" in result.stderr
        assert "--force" in result.stderr and "smoke test" not in result.stderr and "> push" not in result.stderr
        assert registry.manifest("main/resnet50", f"{TAG}-x86_64")[0] == before
    finally:
        docker("tag", original, image)


# --- serving images (`publish --export`) ---------------------------------------------------------------
# One export (ResNet50, 1 step at 64 px on x86_64, as test_aarch64.py serves it: MobileNetV3 after 1 step
# at 32 px answers NaN scores, which the smoke test rightly refuses), packaged for both archs and
# published. The serving layer is per suite: the x86_64 paddleclas-serving layer is test_paddleclas.py's,
# the aarch64 one is built here and test_aarch64.py, which runs last, finds it. The smoke test is one
# inference through each image's server, network off, aarch64 under emulation. Last in the module: the base and Paddle layers are then already in
# the registry (the training images'), and the push mounts them instead of uploading them again.
SERVED = "resnet50"


@pytest.fixture(scope="module")
def packaged_export(images, tmp_path_factory):
    """(the export's directory, its digest): trained 1 step, exported, packaged for both archs and tagged
    into this module's namespace, as the model images are."""
    start = time.monotonic()
    out = tmp_path_factory.mktemp("serving") / "out"
    invoke("run", SERVED, "--output", str(out), "--", "--steps", "1", "-o", "Global.image_size=64",
           "--export", "/output/inference")
    result = invoke("package", SERVED, "--export", str(out / "inference"), "--arch", "all")
    assert "0 failed, 0 skipped" in result.stderr, result.stderr
    tags = re.findall(r"docker run --rm -p 8000:8000 (\S+)", result.stderr)
    assert len(tags) == 2, result.stderr
    made = [f"{NAMESPACE}/{tag.split('/', 1)[1]}" for tag in tags]
    for tag, target in zip(tags, made):
        docker("tag", tag, target)
    print(f"\n{SERVED} trained 1 step, exported and packaged for both archs in {time.monotonic() - start:.0f} s")
    yield out / "inference", tags[0].split(":")[1].split("-")[0]
    docker("rmi", *made, check=False)


def test_one_exports_serving_images_are_published_for_both_archs_smoke_tested_by_one_inference(registry, images,
                                                                                               packaged_export, tmp_path):
    export, digest = packaged_export
    start = time.monotonic()
    result = publish(images, "--registry", f"{registry.host}/main", "--model", SERVED, "--export", str(export),
                     "--push", "--report", str(tmp_path))
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 inference through the server" in result.stderr
    name, version = f"main/{SERVED}-serving", f"{digest}-cpu"
    assert registry.tags(name) == sorted([f"{version}-x86_64", f"{version}-aarch64", version, "cpu", "latest"])
    list_digest, doc = registry.manifest(name, version)
    assert doc["mediaType"] == LIST and registry.manifest(name, "latest")[0] == list_digest
    assert sorted(m["platform"]["architecture"] for m in doc["manifests"]) == ["amd64", "arm64"]
    for entry in doc["manifests"]:
        arch = {v: k for k, v in ARCHS.items()}[entry["platform"]["architecture"]]
        _, image = registry.manifest(name, entry["digest"])
        labels = registry.get(f"{name}/blobs/{image['config']['digest']}").json()["config"]["Labels"]
        assert labels["io.kunlun.smoke"] == "passed: served 1 inference" and labels["io.kunlun.arch"] == arch
        assert labels["io.kunlun.layer"] == "package" and labels["io.kunlun.model"] == SERVED
        assert labels["io.kunlun.model.digest"].startswith(digest) and json.loads(labels["io.kunlun.model.files"])
        assert labels["io.kunlun.lock.paddleclas-serving.sha256"] and labels["org.opencontainers.image.revision"]
    [cell] = json.loads((tmp_path / "report.json").read_text())["cells"]
    assert (cell["name"], cell["kind"], cell["status"]) == (f"{SERVED}-serving/cpu", "package", "published")
    assert (tmp_path / "sbom" / f"{SERVED}-serving" / "cpu-aarch64" / "python.cdx.json").is_file()
    print(f"\npublish of one export's serving images x 2 archs took {seconds:.0f} s")
    for a in cell["archs"]:
        print(f"  {a['arch']}: {a['seconds']}  smoke: {a['smoke']}")
