"""`invoke k8s MODEL --serve`: a KServe ServingRuntime + InferenceService and a Deployment + Service,
checked against KServe's CRD schemas and the Kubernetes schemas; probes, resources, security context
and the stop timing as serving_k8s's docstring says; a golden file per kind; bad flags are errors."""
import json
import os
from pathlib import Path

import pytest
import yaml

from kunlun_bundle.errors import UsageError
from kunlun_bundle.training import serving_k8s as sk

IMAGE = "registry.example:5000/kunlun/resnet50-serving:3f2a9c1e-xpu-x86_64"
GOLDEN = Path(__file__).parent / "golden" / "k8s-serving"


def serving(replicas=1, xpus=0, **kw):
    return sk.Serving("kunlun-resnet50-serving", IMAGE, replicas, xpus, **kw)


def by_kind(s):
    return {d["kind"]: d for d in sk.kserve(s) + sk.deployment(s)}


def containers(s):
    docs = by_kind(s)
    return {"deployment": docs["Deployment"]["spec"]["template"]["spec"]["containers"][0],
            "kserve": docs["ServingRuntime"]["spec"]["containers"][0]}


@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("xpus", [0, 2])
@pytest.mark.parametrize("claim", [None, "checkpoints"])
def test_both_forms_are_schema_valid(replicas, xpus, claim):
    s = serving(replicas, xpus, model_claim=claim)
    assert sk.problems(sk.kserve(s)) == []
    assert sk.problems(sk.deployment(s)) == []


def test_the_kserve_form_is_a_v2_runtime_and_a_service_that_uses_it():
    docs = by_kind(serving(3, 2))
    runtime, isvc = docs["ServingRuntime"], docs["InferenceService"]
    assert (runtime["apiVersion"], isvc["apiVersion"]) == ("serving.kserve.io/v1alpha1", "serving.kserve.io/v1beta1")
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    assert runtime["spec"]["supportedModelFormats"] == [{"name": "paddle", "autoSelect": False}]
    assert runtime["spec"]["containers"][0]["name"] == "kserve-container"   # what KServe merges the model into
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == predictor["maxReplicas"] == 3
    model = predictor["model"]
    assert model["protocolVersion"] == "v2" and model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] == "paddle"
    assert model["resources"] == {"limits": {"baidu.com/xpu": 2}}
    # Knative (KServe's default mode) rejects these in the pod; its queue-proxy drains instead.
    assert "lifecycle" not in runtime["spec"]["containers"][0] and "terminationGracePeriodSeconds" not in predictor


def test_the_server_command_is_serve_on_port_8000_with_the_drain():
    for c in containers(serving()).values():
        assert c["args"] == ["serve", "--model", "/opt/kunlun/model", "--port", "8000", "--drain-seconds", "20"]
        assert "command" not in c          # the image's entrypoint (tini -- python -m kunlun_train) runs it
    c = containers(serving(model_dir="/srv/model", args=["--max-wait-ms", "5"]))["deployment"]
    assert c["args"][1:3] == ["--model", "/srv/model"] and c["args"][-2:] == ["--max-wait-ms", "5"]


def test_probes_are_the_v2_health_endpoints_on_port_8000():
    for c in containers(serving()).values():
        assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8000}
        assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8000}
        # a restart only after a minute without an open port: Paddle's import comes first
        assert c["livenessProbe"]["periodSeconds"] * c["livenessProbe"]["failureThreshold"] >= 60


def test_the_service_is_cluster_ip_port_8000_named_http():
    docs = by_kind(serving(3))
    service, deploy = docs["Service"], docs["Deployment"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"] == \
        deploy["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "serving"   # not the training job's pods
    assert containers(serving())["deployment"]["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert deploy["spec"]["replicas"] == 3 and deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_cards_are_requested_from_the_kunlun_device_plugin():
    assert containers(serving(1, 4))["deployment"]["resources"] == {"limits": {"baidu.com/xpu": 4}}
    assert "resources" not in containers(serving(1, 0))["deployment"]
    assert "resources" not in by_kind(serving(1, 0))["InferenceService"]["spec"]["predictor"]["model"]


def test_non_root_read_only_with_tmp_and_shared_memory():
    for form, c in containers(serving()).items():
        assert c["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True,
                                        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "readOnlyRootFilesystem": True, "seccompProfile": {"type": "RuntimeDefault"}}
        assert {m["mountPath"]: m["name"] for m in c["volumeMounts"]} == {"/dev/shm": "dshm", "/tmp": "tmp"}
    docs = by_kind(serving())
    for volumes in (docs["Deployment"]["spec"]["template"]["spec"]["volumes"], docs["ServingRuntime"]["spec"]["volumes"]):
        v = {v["name"]: v for v in volumes}
        assert v["dshm"]["emptyDir"]["medium"] == "Memory" and "medium" not in v["tmp"]["emptyDir"]


def test_the_grace_period_covers_prestop_drain_and_exit():
    pod = by_kind(serving())["Deployment"]["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    drain = float(c["args"][c["args"].index("--drain-seconds") + 1])
    assert pod["terminationGracePeriodSeconds"] == 30 == 5 + drain + sk.EXIT_MARGIN_SECONDS
    assert pod["terminationGracePeriodSeconds"] <= 30     # within Kubernetes' default, as serve's help asks


def test_a_model_claim_is_mounted_read_only_at_output():
    docs = by_kind(serving(model_claim="checkpoints"))
    for pod, c in ((docs["Deployment"]["spec"]["template"]["spec"], containers(serving(model_claim="checkpoints"))["deployment"]),
                   (docs["InferenceService"]["spec"]["predictor"], docs["InferenceService"]["spec"]["predictor"]["model"])):
        v = {v["name"]: v for v in pod["volumes"]}
        assert v["model"]["persistentVolumeClaim"] == {"claimName": "checkpoints", "readOnly": True}
        assert {"name": "model", "mountPath": "/output", "readOnly": True} in c["volumeMounts"]
    args = docs["ServingRuntime"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "/output/inference"


def test_a_broken_manifest_is_caught():
    runtime, isvc = sk.kserve(serving())
    isvc["spec"]["predictor"]["model"]["protocolVersoin"] = "v2"       # a typo: outside the CRD
    runtime["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = "5"
    deploy, _ = sk.deployment(serving())
    deploy["spec"]["replicas"] = "3"
    found = "\n".join(sk.problems([runtime, isvc, deploy]))
    assert "protocolVersoin" in found and "readinessProbe.periodSeconds" in found and "spec.replicas" in found


def test_the_kserve_schemas_name_their_source():
    for kind, path in sk.KSERVE_SCHEMAS.items():
        schema = json.loads(path.read_text())
        assert schema["x-source"]["repo"] == "kserve/kserve" and schema["x-source"]["kind"] == kind
        assert len(schema["x-source"]["commit"]) == 40 and schema["x-source"]["path"].startswith("config/crd/")
        assert path.stat().st_size < 40_000, "prune it: only the fields the manifests use"


def test_files_are_written_with_a_generated_header(tmp_path):
    paths = sk.write(serving(3, 2), tmp_path)
    assert [p.name for p in paths] == ["inferenceservice.yaml", "deployment.yaml"]
    text = (tmp_path / "deployment.yaml").read_text()
    assert text.startswith("# Generated by `invoke k8s --serve` for kunlun-resnet50-serving: 3 replica(s), 2 XPU(s) each")
    assert "&id" not in text                      # no YAML anchors: each document reads on its own
    assert [d["kind"] for d in yaml.safe_load_all(text)] == ["Deployment", "Service"]
    assert [d["kind"] for d in yaml.safe_load_all((tmp_path / "inferenceservice.yaml").read_text())] == \
        ["ServingRuntime", "InferenceService"]


@pytest.mark.parametrize("kind", ["ServingRuntime", "InferenceService", "Deployment", "Service"])
def test_golden_manifests(kind):
    """One golden file per kind, for 3 replicas x 2 XPUs of a serving image (UPDATE_GOLDEN=1 to accept)."""
    text = yaml.safe_dump(by_kind(serving(3, 2))[kind], sort_keys=False)
    path = GOLDEN / f"{kind}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("kw, message", [
    ({"replicas": 0}, "--replicas 0: at least 1"),
    ({"xpus_per_replica": -1}, "--xpus-per-replica -1: 0 (CPU) or more"),
    ({"name": "Kunlun_ResNet"}, "not a DNS-1123"),
    ({"name": "9lives"}, "not a DNS-1123"),
    ({"name": "k" * 54}, "at most 53"),
    ({"model_claim": "My Claim"}, "--model-claim 'My Claim'"),
    ({"model_dir": "model"}, "--model-dir 'model': an absolute path"),
    ({"image": ""}, "--image ''"),
    ({"args": ["--drain-seconds", "60"]}, "the manifests set"),
])
def test_bad_values_are_usage_errors(kw, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sk.Serving(**{"name": "kunlun-resnet50-serving", "image": IMAGE, **kw})


def test_plan_needs_an_image_or_a_claim():
    with pytest.raises(UsageError, match="--serve needs --image"):
        sk.plan("resnet50", None, lambda: pytest.fail("no training image without a claim"))
    s = sk.plan("resnet50", None, lambda: "kunlun/resnet50:1-cpu", "reg.example:5000/team", "2", None,
                model_claim="checkpoints")
    assert (s.image, s.replicas, s.directory) == ("reg.example:5000/team/resnet50:1-cpu", 2, "/output/inference")
    assert sk.plan("resnet50", "my-image:1", None, "reg.example/x").image == "reg.example/x/my-image:1"
    with pytest.raises(UsageError, match="--replicas 'two': not a whole number"):
        sk.plan("resnet50", IMAGE, None, replicas="two")
    with pytest.raises(UsageError, match="MODEL 'Res_Net'"):
        sk.plan("Res_Net", IMAGE, None)


@pytest.mark.parametrize("args, code, message", [
    (["--serve", "--image", IMAGE, "--replicas=0"], 3, "--replicas 0: at least 1"),
    (["--serve", "--image", IMAGE, "--xpus-per-replica=-1"], 3, "--xpus-per-replica -1"),
    (["--serve"], 3, "--serve needs --image"),
    (["--serve", "--image", IMAGE, "--nodes", "2"], 3, "--nodes: not with --serve"),
    (["--replicas", "2"], 3, "--replicas: only with --serve"),
    (["--serve", "--image", IMAGE, "--replica", "2"], 1, "No idea what '--replica' is"),
])
def test_the_task_turns_bad_flags_into_one_line_errors(invoke, args, code, message, tmp_path):
    result = invoke("k8s", "resnet50", *args, "--output", str(tmp_path))
    assert result.returncode == code and message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


def test_the_task_writes_both_files(invoke, tmp_path):
    result = invoke("k8s", "resnet50", "--serve", "--image", IMAGE, "--replicas", "3", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deployment.yaml", "inferenceservice.yaml"]
    [deploy, _] = yaml.safe_load_all((tmp_path / "deployment.yaml").read_text())
    assert deploy["spec"]["replicas"] == 3 and deploy["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
