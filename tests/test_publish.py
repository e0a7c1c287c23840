"""Publishing without a registry or Docker: the tag scheme, the plan, the gate (with fake registry
answers), the labels, the SBOM document, credentials, and the CI workflow's task calls."""
from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from kunlun_bundle import layout, naming, publishing
from kunlun_bundle.containers import container
from kunlun_bundle.images import chain, fetch, kinds, labels, lock, packaging
from kunlun_bundle.publishing import plan, registry, sbom
from tests.test_package import export

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github/workflows/images.yml"
REVISION = "a" * 40


# --- the tag scheme ----------------------------------------------------------------------------

def test_tag_scheme(matrix):
    repo = naming.registry_repository(matrix, "registry.example.com/ai", "resnet50")
    assert repo == "registry.example.com/ai/resnet50"
    assert naming.registry_repository(matrix, "127.0.0.1:5000", "resnet50") == "127.0.0.1:5000/kunlun/resnet50"
    assert naming.arch_tag(matrix, "cpu", "aarch64") == "0.1.0-paddle3.2.2-cpu-aarch64"
    assert naming.version_tag(matrix, "resnet50", "cpu") == "0.1.0-paddle3.2.2-cpu"
    assert naming.moving_tags(matrix, "resnet50", "cpu") == ["cpu", "paddleclas2.6.0-cpu", "latest"]
    # the per-arch tag is the local tag, so what is pushed is what `invoke list` shows
    assert naming.model_image(matrix, "resnet50", "cpu", "x86_64").endswith(":" + naming.arch_tag(matrix, "cpu", "x86_64"))


def test_a_version_tag_names_every_paddle_version_of_its_archs(small_matrix):
    # the small matrix pins Paddle 3.0.0 on x86_64 and 2.6.2 on aarch64
    assert naming.version_tag(small_matrix, "resnet50", "cpu") == "9.8.7-paddle2.6.2_3.0.0-cpu"
    assert naming.version_tag(small_matrix, "resnet50", "xpu") == "9.8.7-paddle3.0.0-xpu"
    assert "latest" not in naming.moving_tags(small_matrix, "resnet50", "xpu")


def test_every_tag_is_a_valid_docker_tag(matrix):
    valid = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    for model in matrix.ready_models():
        for flavour in matrix.ready_flavours():
            tags = [naming.version_tag(matrix, model, flavour), *naming.moving_tags(matrix, model, flavour)]
            tags += [naming.arch_tag(matrix, flavour, a) for a in matrix.model_archs(model, flavour)]
            assert all(valid.match(t) for t in tags), tags


# --- the plan and the gate -------------------------------------------------------------------------

def release_of(matrix, run_archs=("x86_64", "aarch64"), model="resnet50"):
    layers = chain.select(matrix, [model], None, list(matrix.arch_registry))
    [release] = plan.releases_for(matrix, "127.0.0.1:5000/test", layers, list(run_archs))
    return release


def in_registry(a, source="sha256:local", smoke=labels.SMOKE_PASSED, revision=REVISION, digest="sha256:remote"):
    a.remote_digest = digest + a.arch
    a.remote_labels = {labels.SOURCE_IMAGE: source, labels.SMOKE: smoke, labels.REVISION: revision}
    a.entry = {"mediaType": registry.MANIFEST, "digest": a.remote_digest, "size": 1000,
               "platform": {"architecture": a.platform.split("/")[1], "os": "linux"}}


def test_the_plan_has_every_declared_arch_behind_one_repository(matrix):
    release = release_of(matrix, run_archs=["x86_64"])
    assert release.repository == "127.0.0.1:5000/test/resnet50" and release.path == "test/resnet50"
    assert [(a.arch, a.in_run) for a in release.archs] == [("x86_64", True), ("aarch64", False)]
    assert release.archs[1].remote == "127.0.0.1:5000/test/resnet50:0.1.0-paddle3.2.2-cpu-aarch64"
    assert release.archs[1].local == "kunlun/resnet50:0.1.0-paddle3.2.2-cpu-aarch64"


def test_a_missing_arch_holds_the_whole_cell_back_and_says_which(matrix):
    release = release_of(matrix)
    release.archs[0].local_id = "sha256:local"                    # x86_64 built, aarch64 not
    plan.classify([release], REVISION, manifests=True)
    assert release.status == "blocked"
    assert release.reason.startswith("aarch64 missing: no local image kunlun/resnet50:0.1.0-paddle3.2.2-cpu-aarch64")
    assert "invoke build --arch aarch64 --model resnet50" in release.reason
    rows = plan.rows([release], manifests=True)
    assert [r[2] for r in rows[:3]] == ["held back", "missing", "held back"]


def test_both_archs_built_pass_the_gate_and_are_new(matrix):
    release = release_of(matrix)
    for a in release.archs:
        a.local_id = "sha256:local"
    plan.classify([release], REVISION, manifests=True)
    assert release.status == "planned" and release.reason is None
    assert [a.state for a in release.archs] == ["new", "new"]
    assert plan.conflicts([release], manifests=True) == []


def test_an_arch_from_another_job_counts_only_from_this_commit_with_a_passed_smoke_test(matrix):
    release = release_of(matrix, run_archs=["x86_64"])
    release.archs[0].local_id = "sha256:local"
    plan.classify([release], REVISION, manifests=True)
    assert "aarch64 missing: not in this run" in release.reason
    for smoke, revision, expected in [("failed", REVISION, "no passed smoke test"),
                                      (labels.SMOKE_PASSED, "b" * 40, "is from revision bbbbbbbbbbbb")]:
        in_registry(release.archs[1], smoke=smoke, revision=revision)
        assert expected in plan.gate_before_push(release, REVISION, manifests=True)
    in_registry(release.archs[1])
    assert plan.gate_before_push(release, REVISION, manifests=True) is None
    # per-arch CI jobs push without manifest lists: the other arch does not matter then
    release.archs[1].entry = None
    assert plan.gate_before_push(release, REVISION, manifests=False) is None


def test_an_image_made_from_the_same_local_image_is_present_and_not_pushed_again(matrix):
    release = release_of(matrix)
    for a in release.archs:
        a.local_id = "sha256:local"
        in_registry(a)
    release.remote_version_digest = registry.digest_of(registry.list_body([a.entry for a in release.archs]))
    plan.classify([release], REVISION, manifests=True)
    assert [a.state for a in release.archs] == ["present", "present"]
    assert plan.conflicts([release], manifests=True) == []
    assert plan.rows([release], manifests=True)[2][2] == "present"


def test_immutable_tags_naming_other_images_are_conflicts(matrix):
    release = release_of(matrix)
    for a in release.archs:
        a.local_id = "sha256:local"
        in_registry(a)
    release.archs[1].remote_labels[labels.SOURCE_IMAGE] = "sha256:older"
    release.remote_version_digest = "sha256:oldlist"
    plan.classify([release], REVISION, manifests=True)
    assert release.archs[1].state == "conflict"
    found = plan.conflicts([release], manifests=True)
    assert len(found) == 2
    assert found[0].startswith("127.0.0.1:5000/test/resnet50:0.1.0-paddle3.2.2-cpu-aarch64 is sha256:remoteaarch")
    assert "0.1.0-paddle3.2.2-cpu is sha256:oldlist and would change" in found[1]


def test_a_version_list_naming_other_digests_is_a_conflict_even_when_the_images_are_present(matrix):
    release = release_of(matrix)
    for a in release.archs:
        a.local_id = "sha256:local"
        in_registry(a)
    release.remote_version_digest = "sha256:handmade"
    plan.classify([release], REVISION, manifests=True)
    assert "not the list of the per-arch images" in plan.conflicts([release], manifests=True)[0]


def test_a_manifest_list_is_deterministic_and_sorted_by_platform(matrix):
    release = release_of(matrix)
    for a in release.archs:
        in_registry(a)
    entries = [a.entry for a in release.archs]
    body = registry.list_body(entries)
    assert body == registry.list_body(entries[::-1])
    doc = json.loads(body)
    assert doc["mediaType"] == registry.MANIFEST_LIST and doc["schemaVersion"] == 2
    assert [e["platform"]["architecture"] for e in doc["manifests"]] == ["amd64", "arm64"]


def test_a_manifest_entry_takes_the_platform_from_the_image_config():
    manifest = registry.Manifest("sha256:d", registry.MANIFEST, 1234, {})
    assert plan.entry(manifest, {"architecture": "arm64", "os": "linux", "variant": "v8"}) == {
        "mediaType": registry.MANIFEST, "digest": "sha256:d", "size": 1234,
        "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}


def test_the_registry_argument_needs_a_host():
    assert registry.split("127.0.0.1:5000/kunlun/resnet50") == ("127.0.0.1:5000", "kunlun/resnet50")
    with pytest.raises(registry.PublishError, match="does not start with a registry host"):
        registry.split("kunlun/resnet50")
    assert registry.is_loopback("127.0.0.1:5000") and registry.is_loopback("localhost:80")
    assert registry.is_loopback("[::1]:5000") and not registry.is_loopback("registry.example.com")


# --- labels ----------------------------------------------------------------------------------------

def test_model_images_get_the_oci_and_bundle_labels(matrix, root):
    layer = chain.model_layer(matrix, "resnet50", "cpu", matrix.arch_registry["aarch64"])
    found = labels.at_build(matrix, layer, ROOT)
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()
    assert found["org.opencontainers.image.revision"] == git("rev-parse", "HEAD")
    assert found["org.opencontainers.image.created"] == git("log", "-1", "--format=%cI")   # the commit, not the clock
    assert found["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert "ResNet50" in found["org.opencontainers.image.description"]
    assert "PaddlePaddle 3.2.2" in found["org.opencontainers.image.description"]
    # one key per fact: the runtime's version is io.kunlun.xpu.runtime.version, on the XPU framework layer only
    assert not any("runtime" in key for key in found)
    assert found["io.kunlun.lock.paddleclas.sha256"] == fetch.sha256_of(ROOT / "locks/aarch64/cpu/paddleclas.txt")
    assert found["io.kunlun.lock.paddle.sha256"] == fetch.sha256_of(ROOT / "locks/aarch64/cpu/paddle.txt")
    # the rest comes from the model's Dockerfile: together they are the whole set
    dockerfile = (ROOT / layer.dockerfile).read_text()
    for key in ("org.opencontainers.image.title", "org.opencontainers.image.version", "io.kunlun.arch",
                "io.kunlun.flavour", "io.kunlun.paddle.version", "io.kunlun.suite", "io.kunlun.suite.version"):
        assert f"{key}=" in dockerfile and key not in found


def test_lower_layers_get_no_commit_labels(matrix):
    """A commit-dependent label on a framework or suite layer would bust the cache of everything above it."""
    top = chain.model_layer(matrix, "resnet50", "cpu", matrix.arch_registry["x86_64"])
    for layer in top.ancestry()[1:3]:
        assert list(labels.at_build(matrix, layer, ROOT)) == ["io.kunlun.lock.sha256", "io.kunlun.inputs.sha256"]


def test_the_source_url_never_carries_credentials(monkeypatch):
    assert labels.public_url("https://ci:ghp_secret@github.com/org/kunlun.git") == "https://github.com/org/kunlun.git"
    monkeypatch.setenv("KUNLUN_SOURCE_URL", "https://x:tok@git.example/kunlun")
    labels.git_facts.cache_clear()
    try:
        assert labels.git_facts(ROOT)["source"] == "https://git.example/kunlun"
    finally:
        labels.git_facts.cache_clear()


def test_the_published_labels_keep_what_the_image_was_built_from(matrix):
    release = release_of(matrix)
    a = release.archs[0]
    a.local_id = "sha256:abc"
    model = chain.model_layer(matrix, release.model, release.flavour, matrix.arch_registry[a.arch])
    found = labels.published(matrix, model, ROOT, {"org.opencontainers.image.revision": "b" * 40}, a.local_id)
    assert found["org.opencontainers.image.revision"] == "b" * 40
    assert found[labels.SOURCE_IMAGE] == "sha256:abc" and found[labels.SMOKE] == labels.SMOKE_PASSED
    assert found[labels.SBOM] == layout.SBOM_DIR == "/opt/kunlun/sbom"
    dockerfile = publishing.layer.dockerfile("sha256:abc", found)
    assert dockerfile.startswith("FROM sha256:abc\nCOPY sbom/ /opt/kunlun/sbom/\nLABEL ")
    # one escaping for every LABEL the bundle writes: keys bare, values JSON-quoted
    assert dockerfile.count("LABEL") == 1 and 'io.kunlun.smoke="passed: trained 1 step"' in dockerfile


# --- SBOM ----------------------------------------------------------------------------------------

LISTING = {"python": "3.11.2", "packages": [{"name": "numpy", "version": "1.26.4", "license": "BSD-3-Clause"},
                                            {"name": "Pillow", "version": "99.0", "license": ""}]}


def test_the_sbom_is_cyclonedx_with_purls_and_the_locked_wheel_hashes():
    locks = [ROOT / "locks/x86_64/cpu/paddle.txt"]
    numpy_sha = next(w.sha256 for w in lock.LockFile.read(locks[0]).wheels if w.name == "numpy")
    files = sbom.files("reg/ns/resnet50:0.1.0-paddle3.2.2-cpu-x86_64", "sha256:" + "c" * 64, "2026-11-23T21:47:59Z",
                       LISTING, "zlib1g\t1:1.2.13\tamd64\npython3\t3.11.2-1\tamd64\n", locks)
    doc = json.loads(files[sbom.PYTHON_FILE])
    assert (doc["bomFormat"], doc["specVersion"], doc["version"]) == ("CycloneDX", "1.5", 1)
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", doc["serialNumber"])
    assert doc["metadata"]["timestamp"] == "2026-11-23T21:47:59Z"
    assert doc["metadata"]["component"]["type"] == "container"
    numpy = doc["components"][0]
    assert numpy["purl"] == "pkg:pypi/numpy@1.26.4" and numpy["hashes"] == [{"alg": "SHA-256", "content": numpy_sha}]
    assert numpy["licenses"] == [{"license": {"name": "BSD-3-Clause"}}]
    assert doc["components"][1]["purl"] == "pkg:pypi/pillow@99.0" and "hashes" not in doc["components"][1]
    assert files[sbom.OS_FILE] == b"python3\t3.11.2-1\tamd64\nzlib1g\t1:1.2.13\tamd64\n"
    # the same image gives the same bytes (so the publish layer is the same)
    again = sbom.files("reg/ns/resnet50:0.1.0-paddle3.2.2-cpu-x86_64", "sha256:" + "c" * 64, "2026-11-23T21:47:59Z",
                       LISTING, "python3\t3.11.2-1\tamd64\nzlib1g\t1:1.2.13\tamd64\n", locks)
    assert again == files


# --- credentials -----------------------------------------------------------------------------------

def test_credentials_come_from_the_environment_first(monkeypatch, tmp_path):
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"fromconfig:configpw").decode()
    (config / "config.json").write_text(json.dumps({"auths": {"reg.example:5000": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv(registry.USER_ENV, raising=False)
    monkeypatch.delenv(registry.PASSWORD_ENV, raising=False)
    assert registry.credentials("reg.example:5000") == registry.Credentials("fromconfig", "configpw")
    assert registry.credentials("other.example") is None
    monkeypatch.setenv(registry.USER_ENV, "ci")
    monkeypatch.setenv(registry.PASSWORD_ENV, "envpw")
    creds = registry.credentials("reg.example:5000")
    assert creds.auth_config() == {"username": "ci", "password": "envpw"}
    assert "envpw" not in repr(creds) and "envpw" not in str(creds)


def test_a_registry_asking_for_credentials_without_any_is_a_clear_error():
    r = registry.Registry("127.0.0.1:1", None)
    error = r._auth_error()
    assert error.exit_code == 10 and "requires credentials and none were given" in error.message
    assert "KUNLUN_REGISTRY_USER" in error.hint
    wrong = registry.Registry("127.0.0.1:1", registry.Credentials("ci", "hunter2"))._auth_error()
    assert "refused the credentials of user 'ci'" in wrong.message and "hunter2" not in str(wrong)


# --- the CI workflow ---------------------------------------------------------------------------------

def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def kunlun_calls() -> list[list[str]]:
    calls = []
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").replace("\\\n", " ").splitlines():
                if line.strip().startswith("./kunlun "):
                    calls.append(line.split()[1:])
    return calls


def test_the_workflow_calls_only_tasks_that_exist():
    from invoke import Collection
    import tasks
    names = set(Collection.from_module(tasks).task_names)
    calls = kunlun_calls()
    assert {call[0] for call in calls} >= {"build", "publish"}
    for call in calls:
        assert call[0] in names, f"./kunlun {' '.join(call)}: no task '{call[0]}'"
        task = Collection.from_module(tasks)[call[0]]
        options = {o.lstrip("-").split("=")[0].replace("-", "_") for o in call[1:] if o.startswith("--")}
        params = set(task.get_arguments() and [n for a in task.get_arguments() for n in a.names])
        params = {p.replace("-", "_") for p in params} | {f"no_{p}" for p in {q.replace("-", "_") for q in params}}
        assert options <= params, f"./kunlun {' '.join(call)}: unknown options {options - params}"


def test_the_workflow_builds_per_arch_then_publishes_the_manifests():
    jobs = workflow()["jobs"]
    per_arch = next(j for j in jobs.values() if "matrix" in j.get("strategy", {}))
    assert set(per_arch["strategy"]["matrix"]["arch"]) == {"x86_64", "aarch64"}
    manifests = next(j for j in jobs.values() if any("--arch none" in s.get("run", "") for s in j["steps"]))
    assert manifests["needs"]
    text = WORKFLOW.read_text()
    assert "KUNLUN_REGISTRY_PASSWORD: ${{ secrets." in text   # from secrets, never spelled out


def test_a_failed_smoke_test_pushes_nothing_of_the_cell(matrix, monkeypatch, tmp_path):
    release = release_of(matrix)
    for a in release.archs:
        a.local_id = "sha256:local-" + a.arch
    plan.classify([release], REVISION, manifests=True)
    smoked, pushed = [], []
    monkeypatch.setattr(publishing.smoke, "smoke_test", lambda client, a, args: smoked.append(a.arch) or
                        ("exit 1: loss is nan" if a.arch == "aarch64" else None))
    monkeypatch.setattr(publishing, "prepare_and_push", lambda *args: pushed.append(args))
    publishing.publish_release(None, matrix, ROOT, release, None, tmp_path, manifests=True)
    assert smoked == ["x86_64", "aarch64"] and pushed == []
    assert release.status == "blocked" and release.reason == "aarch64 failed its smoke test: exit 1: loss is nan"
    # the passed one is remembered for a rerun of this run (same report directory); the failed one is not
    record = publishing.smoke.SmokeRecord(tmp_path)
    assert record.has(release.archs[0], []) and not record.has(release.archs[1], [])


def test_a_rerun_with_the_same_report_does_not_smoke_test_again(matrix, monkeypatch, tmp_path):
    release = release_of(matrix)
    for a in release.archs:
        a.local_id = "sha256:local-" + a.arch
        publishing.smoke.SmokeRecord(tmp_path).add(a, ["-o", "x=1"], 12.0)
    plan.classify([release], REVISION, manifests=False)
    monkeypatch.setattr(publishing.smoke, "smoke_test", lambda *args: pytest.fail("smoke-tested again"))
    pushed = []
    monkeypatch.setattr(publishing, "prepare_and_push", lambda client, m, root, release, a, *rest: pushed.append(a.arch))
    publishing.publish_release(None, matrix, ROOT, release, None, tmp_path, manifests=False, smoke_args=["-o", "x=1"])
    assert pushed == ["x86_64", "aarch64"] and release.status == "pushed"


def test_bearer_token_registries_get_a_token_from_their_realm_with_the_credentials():
    """Registries such as Harbor or GHCR answer 401 with a Bearer challenge; the token service takes basic auth."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            auth = self.headers.get("Authorization", "")
            seen.append((self.path, auth))
            if self.path.startswith("/token"):
                ok = auth == "Basic " + base64.b64encode(b"ci:pw").decode()
                self.send_response(200 if ok else 401)
                self.end_headers()
                self.wfile.write(json.dumps({"token": "T0K"}).encode() if ok else b"{}")
            elif auth == "Bearer T0K":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")
            else:
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",service="test"')
                self.end_headers()

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        registry.Registry(f"127.0.0.1:{port}", registry.Credentials("ci", "pw")).check()
        assert any(path.startswith("/token?service=test") for path, _ in seen)
        assert seen[-1] == ("/v2/", "Bearer T0K")
        with pytest.raises(registry.RegistryAuthError, match="refused the credentials of user 'ci'"):
            registry.Registry(f"127.0.0.1:{port}", registry.Credentials("ci", "wrong")).check()
        with pytest.raises(registry.RegistryAuthError, match="requires credentials and none were given"):
            registry.Registry(f"127.0.0.1:{port}", None).check()
    finally:
        server.shutdown()


def test_a_refused_push_is_told_by_the_registrys_status_not_by_a_message(monkeypatch):
    """After the daemon's push fails, the registry is asked to start an upload: 401/403 is a refusal (exit 10)."""
    calls = []

    def answer(method, url, headers=None, **kwargs):
        calls.append((method, url.split("/v2", 1)[1]))
        response = requests.Response()
        if method == "DELETE":
            response.status_code = 204
        elif (headers or {}).get("Authorization") == "Basic " + base64.b64encode(b"ci:pw").decode():
            response.status_code, response.headers["Location"] = 202, "/v2/team/resnet50/blobs/uploads/u1"
        else:
            response.status_code, response.headers["WWW-Authenticate"] = 401, 'Basic realm="test"'
        return response

    monkeypatch.setattr(requests.Session, "request", lambda self, method, url, **kw: answer(method, url, **kw))
    monkeypatch.setattr(requests.Session, "delete", lambda self, url, **kw: answer("DELETE", url, **kw))
    registry.Registry("127.0.0.1:5000", registry.Credentials("ci", "pw")).check_push("team/resnet50")
    assert calls[-1] == ("DELETE", "/team/resnet50/blobs/uploads/u1")   # the empty upload is cancelled
    with pytest.raises(registry.RegistryAuthError, match="refused the credentials of user 'ci'") as refused:
        registry.Registry("127.0.0.1:5000", registry.Credentials("ci", "wrong")).check_push("team/resnet50")
    assert refused.value.exit_code == 10


def test_plan_states_are_one_enum_and_read_as_words(matrix):
    release = release_of(matrix)
    release.archs[0].local_id = "sha256:local"
    plan.classify([release], REVISION, manifests=True)
    assert release.archs[1].state is plan.State.missing and release.status is plan.Outcome.blocked
    assert json.dumps([release.archs[1].state, release.status]) == '["missing", "blocked"]'   # report.json
    assert f"{plan.State.held_back}" == "held back"                                    # the plan table


# --- serving images (`publish --export`): the same plan, gate and machinery, the package kind's names ---

def serving_release(matrix, tmp_path, run_archs=("x86_64", "aarch64")):
    directory = export(tmp_path / "inference")
    layers = [chain.package_layer(matrix, "resnet50", "cpu", arch, directory, required=True)
              for arch in matrix.arch_registry.resolve("all")]
    [release] = plan.releases_for(matrix, "127.0.0.1:5000/test", layers, list(run_archs))
    assert release.kind is kinds.PACKAGE
    return release, directory


def test_serving_tags_name_the_export_and_live_in_the_models_serving_repository(matrix):
    digest = "3f2a9c1e0b7d" + "0" * 52
    names = naming.published_serving(matrix, "reg.example/ai", "resnet50", digest, "cpu", "aarch64")
    assert names == ("reg.example/ai/resnet50-serving", "3f2a9c1e0b7d-cpu-aarch64", "3f2a9c1e0b7d-cpu", ["cpu", "latest"])
    # the per-arch tag is the local tag `invoke package` gave, so what is pushed is what was built
    assert naming.packaged_image(matrix, "resnet50", digest, "cpu", "aarch64") == \
        f"{matrix.namespace}/resnet50-serving:{names.arch_tag}"
    assert naming.published_serving(matrix, "reg.example", "unet", digest, "xpu", "x86_64").moving_tags == ["xpu"]
    valid = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    assert all(valid.match(t) for t in [names.arch_tag, names.version_tag, *names.moving_tags])
    # a model image's names are unchanged by the generalisation
    assert naming.published_model(matrix, "reg.example/ai", "resnet50", "cpu", "x86_64") == (
        "reg.example/ai/resnet50", "0.1.0-paddle3.2.2-cpu-x86_64", "0.1.0-paddle3.2.2-cpu",
        ["cpu", "paddleclas2.6.0-cpu", "latest"])


def test_a_serving_release_has_every_declared_arch_of_the_export(matrix, tmp_path):
    release, directory = serving_release(matrix, tmp_path, run_archs=["x86_64"])
    digest = packaging.Export.read(directory, "resnet50").digest[:12]
    assert release.repository == "127.0.0.1:5000/test/resnet50-serving" and release.name == "resnet50-serving/cpu"
    assert (release.version_tag, release.moving_tags) == (f"{digest}-cpu", ["cpu", "latest"])
    assert [(a.arch, a.in_run) for a in release.archs] == [("x86_64", True), ("aarch64", False)]
    assert release.archs[1].local == f"kunlun/resnet50-serving:{digest}-cpu-aarch64"
    assert release.archs[1].remote == f"127.0.0.1:5000/test/resnet50-serving:{digest}-cpu-aarch64"
    # given only x86_64's layer, the release still has aarch64's (the matrix declares it)
    x86 = chain.package_layer(matrix, "resnet50", "cpu", matrix.arch_registry["x86_64"], directory)
    [again] = plan.releases_for(matrix, "127.0.0.1:5000/test", [x86], ["x86_64"])
    assert [a.local for a in again.archs] == [a.local for a in release.archs]


def test_a_missing_serving_arch_holds_the_release_back_naming_the_package_command(matrix, tmp_path):
    release, directory = serving_release(matrix, tmp_path)
    release.archs[0].local_id = "sha256:local"                    # x86_64 packaged, aarch64 not
    plan.classify([release], REVISION, manifests=True)
    assert release.status == "blocked"
    assert release.reason == (f"aarch64 missing: no local image {release.archs[1].local} "
                              f"(run `invoke package resnet50 --export {directory} --arch aarch64 --flavour cpu`)")


def test_a_serving_arch_from_another_job_counts_only_with_the_serving_smoke_label(matrix, tmp_path):
    release, _ = serving_release(matrix, tmp_path, run_archs=["x86_64"])
    release.archs[0].local_id = "sha256:local"
    in_registry(release.archs[1], smoke=labels.SMOKE_PASSED)        # a training image's pass is not a serving one's
    assert "no passed smoke test" in plan.gate_before_push(release, REVISION, manifests=True)
    in_registry(release.archs[1], smoke=labels.SMOKE_SERVED)
    assert plan.gate_before_push(release, REVISION, manifests=True) is None and release.archs[1].ready


def test_serving_conflicts_and_presence_are_decided_as_for_model_images(matrix, tmp_path):
    release, _ = serving_release(matrix, tmp_path)
    for a in release.archs:
        a.local_id = "sha256:local"
        in_registry(a, smoke=labels.SMOKE_SERVED)
    release.archs[1].remote_labels[labels.SOURCE_IMAGE] = "sha256:older"   # the export packaged on another commit
    plan.classify([release], REVISION, manifests=True)
    assert [a.state for a in release.archs] == ["present", "conflict"]
    [found] = plan.conflicts([release], manifests=True)
    assert found.startswith(f"{release.archs[1].remote} is sha256:remoteaarch")
    # the tags name the export, not the bundle's version: bumping it would not help
    assert "another commit" in release.kind.conflict_hint and "bump" not in release.kind.conflict_hint


def test_a_serving_image_is_published_with_its_export_labels_and_the_serving_smoke_label(matrix, tmp_path):
    release, _ = serving_release(matrix, tmp_path)
    a = release.archs[0]
    found = labels.published(matrix, a.layer, ROOT, {}, "sha256:abc")
    assert found[labels.SMOKE] == labels.SMOKE_SERVED == "passed: served 1 inference"
    assert found[labels.MODEL] == "resnet50" and found[labels.MODEL_DIGEST].startswith(a.tag[:12])
    assert json.loads(found[labels.MODEL_FILES]) and found[labels.lock_of("paddleclas-serving")]
    assert found[labels.SOURCE_IMAGE] == "sha256:abc" and found[labels.SBOM] == layout.SBOM_DIR


def test_a_serving_smoke_test_is_one_inference_through_the_server_network_off(matrix, tmp_path, monkeypatch):
    release, _ = serving_release(matrix, tmp_path)
    a = release.archs[1]
    a.local_id = "sha256:arm"
    started = {}

    class Running:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def wait(self, timeout=None):
            started["timeout"] = timeout
            return 0

        def output(self):
            return 'ready\n{"event": "summary", "self_test": true, "passed": true, "outputs": ["class_ids"]}\n'

    def start(client, image, command, **options):
        started.update(image=image, command=list(command), **options)
        return Running()
    monkeypatch.setattr(container, "start", start)
    assert publishing.smoke.smoke_test(None, a, ["--threads", "2"]) is None
    assert started["command"][:2] == ["serve", "--self-test"] and started["command"][-2:] == ["--threads", "2"]
    assert started["network_mode"] == "none" and started["platform"] == "linux/arm64" and started["timeout"] >= 600
    Running.output = lambda self: '{"event": "summary", "self_test": true, "passed": false, "error": "POST: 500"}\n'
    assert "exit 0" in publishing.smoke.smoke_test(None, a)


def test_publish_export_combinations_that_make_no_sense_are_usage_errors(invoke, tmp_path):
    directory = str(export(tmp_path / "inference"))
    for args, expected in [
        (("--export", directory), "--export needs exactly one --model"),
        (("--export", directory, "--model", "resnet50", "--model", "vgg16"), "(got 2: resnet50, vgg16)"),
        (("--export", directory, "--model", "bert-base"), "paddlenlp's models have no serving image"),
        (("--export", directory, "--model", "mobilenetv3"), "an export of resnet50, not mobilenetv3"),
        (("--export", str(tmp_path / "nowhere"), "--model", "resnet50"), "no such directory"),
    ]:
        result = invoke("publish", "--registry", "127.0.0.1:1/ns", *args)
        assert result.returncode == 3, (args, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr



def test_the_serving_smoke_is_the_entrypoints_own_self_test_within_the_hosts_timeout():
    """The host's arguments parse as the image's `serve` flags, and the host waits longer than the server may."""
    from kunlun_train.serving import cli
    command, *args = kinds.PACKAGE.smoke.args
    parsed = cli.parser().parse_args(args)
    assert command == "serve" and parsed.self_test and parsed.self_test_timeout < kinds.PACKAGE.smoke.timeout
