"""`invoke k8s MODEL --serve`: Kubernetes manifests that serve one exported model with the image's
`serve` command (Open Inference Protocol V2 over HTTP on port 8000), in two forms:

  inferenceservice.yaml  for KServe: a ServingRuntime (serving.kserve.io/v1alpha1) that says how to
                         run the image and that it speaks V2, and an InferenceService
                         (serving.kserve.io/v1beta1) whose predictor uses it with protocolVersion v2
  deployment.yaml        for clusters without KServe: a Deployment and a ClusterIP Service (port 8000,
                         named http)

Why a ServingRuntime + InferenceService pair and not a custom predictor: in KServe's CRD
(config/crd/full/serving.kserve.io_inferenceservices.yaml, v1beta1) `protocolVersion` exists only on
spec.predictor.model (and the per-framework predictors); a custom predictor (spec.predictor.containers)
has no field for it, so KServe would take the container for a V1 server. The model form names a
runtime and a model format, so the runtime is ours: `kunlun-<model>-serving`, format `paddle`,
`protocolVersions: [v2]`, `autoSelect: false` (only InferenceServices that name it use it, never the
other `paddle` models of the cluster). Its container is called kserve-container, the name KServe merges
the predictor's model fields (resources, volume mounts) into.

The container: the image's entrypoint (tini -- python -m kunlun_train) with `serve --model DIR --port
8000 --drain-seconds 20`; the model is either baked into a serving image (--model-dir, default
/opt/kunlun/model) or the export `export` wrote to a PersistentVolumeClaim (--model-claim: mounted
read-only at /output, the model at /output/inference), which a training image serves as it is. With K
cards per replica (devices.K8S_RESOURCE, as the training manifests request them) the server runs one
predictor per visible card. Probes: readiness GET /v2/health/ready (true once every predictor is built
and warmed; false again on SIGTERM), liveness GET /v2/health/live (true once the port is open). Both
containers run as uid 1000 (the images' user), non-root, without privilege escalation, with every
capability dropped and a read-only root filesystem; /tmp is an emptyDir (temporary files) and /dev/shm
a memory volume. The XPU device nodes must then be usable by uid 1000 (world rw, or containerd's
device_ownership_from_security_context).

Stopping (the Deployment): preStop sleeps PRESTOP_SECONDS first, so that the endpoints controller and
kube-proxy (or the ingress) take the pod out of the Service before the server gets SIGTERM and stops
accepting connections; then the server's drain (DRAIN_SECONDS: ready off, every accepted request
answered, exit 0); terminationGracePeriodSeconds counts from the start of preStop, so GRACE_SECONDS =
preStop + drain + a margin for the process to exit = 5 + 20 + 5 = 30 s, Kubernetes' default (the
server's help says to keep the drain under it). The KServe form sets neither: KServe's default
(Knative) mode rejects `lifecycle` and `terminationGracePeriodSeconds` in the pod, and its queue-proxy
drains the pod itself; in KServe's Standard (raw Deployment) mode add the preStop by hand or use the
Deployment form. Knative also needs its `kubernetes.podspec-persistent-volume-claim` feature flag for
--model-claim.

Both files are checked before they are written: the Kubernetes kinds with kubernetes-validate at
k8s.K8S_VERSION (strict), the KServe kinds with jsonschema against their CRDs' openAPIV3Schema,
extracted and pruned by schemas/extract_kserve.py (schemas/kserve-*.schema.json say from which commit
and what they keep); every object in those schemas that lists properties is treated as closed, so a
field outside what we extracted is an error, not silently dropped."""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .. import layout, naming
from ..errors import UsageError
from . import devices, k8s

PORT = 8000                    # the server's port (serve --port)
PRESTOP_SECONDS = 5            # endpoints controller + kube-proxy propagation, typically 1-3 s
DRAIN_SECONDS = 20             # serve --drain-seconds (its default)
EXIT_MARGIN_SECONDS = 5        # stopping the predictors and leaving the process after the drain
GRACE_SECONDS = PRESTOP_SECONDS + DRAIN_SECONDS + EXIT_MARGIN_SECONDS   # 30
MODEL_DIR = layout.PACKAGED_MODEL                     # where a serving image holds its model
CLAIM_MODEL_DIR = f"{layout.OUTPUT_MOUNT}/inference"   # what `export` writes under /output
MODEL_FORMAT = "paddle"
SCHEMAS = Path(__file__).with_name("schemas")
KSERVE_SCHEMAS = {"InferenceService": SCHEMAS / "kserve-inferenceservice.schema.json",
                  "ServingRuntime": SCHEMAS / "kserve-servingruntime.schema.json"}
# An RFC 1035 label (Service names must be one; it is also a DNS-1123 label); KServe adds
# "-predictor" to the InferenceService's name for its own Services, which must stay within 63.
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 63 - len("-predictor")
CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")   # DNS-1123 subdomain
MANIFEST_ARGS = ("--model", "--port", "--drain-seconds", "--host")   # set here; not through --arg


@dataclass(frozen=True)
class Serving:
    name: str                            # the Deployment, Service, InferenceService and ServingRuntime
    image: str
    replicas: int = 1
    xpus_per_replica: int = 0
    model_dir: Optional[str] = None      # in the image (default MODEL_DIR), or CLAIM_MODEL_DIR with a claim
    model_claim: Optional[str] = None    # PersistentVolumeClaim holding the export, mounted read-only
    shm: str = "1Gi"
    tmp: str = "1Gi"
    args: list[str] = field(default_factory=list)   # more `serve` arguments, e.g. --max-wait-ms 5

    def __post_init__(self):
        if not NAME.match(self.name) or len(self.name) > NAME_MAX:
            raise UsageError(f"name {self.name!r}: not a DNS-1123 (RFC 1035) label of at most {NAME_MAX} characters",
                             hint="lower-case letters, digits and '-', starting with a letter")
        if not self.image or any(c.isspace() for c in self.image):
            raise UsageError(f"--image {self.image!r}: not an image name")
        if self.replicas < 1:
            raise UsageError(f"--replicas {self.replicas}: at least 1")
        if self.xpus_per_replica < 0:
            raise UsageError(f"--xpus-per-replica {self.xpus_per_replica}: 0 (CPU) or more")
        if self.model_claim is not None and (not CLAIM.match(self.model_claim) or len(self.model_claim) > 253):
            raise UsageError(f"--model-claim {self.model_claim!r}: not a PersistentVolumeClaim name (a DNS-1123 subdomain)")
        if self.model_dir is not None and not self.model_dir.startswith("/"):
            raise UsageError(f"--model-dir {self.model_dir!r}: an absolute path in the image")
        for arg in self.args:
            if arg.split("=", 1)[0] in MANIFEST_ARGS:
                raise UsageError(f"--arg {arg}: the manifests set {', '.join(MANIFEST_ARGS)} themselves",
                                 hint="--model-dir / --model-claim choose the model")

    @property
    def directory(self) -> str:
        return self.model_dir or (CLAIM_MODEL_DIR if self.model_claim else MODEL_DIR)

    def serve_args(self) -> list[str]:
        return ["serve", "--model", self.directory, "--port", str(PORT), "--drain-seconds", str(DRAIN_SECONDS),
                *self.args]


def plan(model: str, image: Optional[str], training_image: Callable[[], str], registry: Optional[str] = None,
         replicas=None, xpus_per_replica=None, model_dir: Optional[str] = None, model_claim: Optional[str] = None,
         args: Optional[list[str]] = None) -> Serving:
    """The flags of `k8s MODEL --serve` -> a Serving. Without --image the model's training image serves
    the export from --model-claim (training_image() looks it up in the matrix); a serving image has
    the model baked in, so without a claim there is nothing to serve but --image."""
    if not image and not model_claim:
        raise UsageError("--serve needs --image (a serving image with the model in it) or --model-claim "
                         "(the claim the training wrote its export to, served by the training image)",
                         hint=f"e.g. --image kunlun/{model}-serving:TAG, or --model-claim checkpoints")
    name = f"kunlun-{model}-serving"
    if not NAME.match(name) or len(name) > NAME_MAX:
        raise UsageError(f"MODEL {model!r}: the manifests' name {name} is not a DNS-1123 (RFC 1035) label of at "
                         f"most {NAME_MAX} characters", hint="lower-case letters, digits and '-'")
    return Serving(name=name, image=image_name(image or training_image(), registry),
                   replicas=k8s.count("--replicas", replicas, 1),
                   xpus_per_replica=k8s.count("--xpus-per-replica", xpus_per_replica, 0),
                   model_dir=model_dir, model_claim=model_claim, args=list(args or []))


def image_name(image: str, registry: Optional[str]) -> str:
    """--registry replaces the image's namespace, as for the training images; a bare name gets it prepended."""
    if registry and "/" not in image:
        return f"{registry.rstrip('/')}/{image}"
    return naming.registry_image(image, registry)


def _labels(s: Serving) -> dict:
    return {"app.kubernetes.io/name": s.name, "app.kubernetes.io/component": "serving",
            "app.kubernetes.io/part-of": "kunlun-bundle"}


def _probe(path: str, period: int, timeout: int, failures: int) -> dict:
    return {"httpGet": {"path": path, "port": PORT}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def probes() -> dict:
    # Ready only once every predictor is built and warmed (minutes with many cards): no deadline on it.
    # Live as soon as the port is open, i.e. after Paddle is imported: 6 x 10 s before a restart.
    return {"livenessProbe": _probe("/v2/health/live", 10, 5, 6),
            "readinessProbe": _probe("/v2/health/ready", 5, 3, 2)}


def security_context() -> dict:
    return {"runAsUser": layout.USER.uid, "runAsGroup": layout.USER.uid, "runAsNonRoot": True,
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _scratch_mounts() -> list[dict]:
    return [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": "/tmp"}]


def _scratch_volumes(s: Serving) -> list[dict]:
    return [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": s.shm}},
            {"name": "tmp", "emptyDir": {"sizeLimit": s.tmp}}]


def _model_mounts(s: Serving) -> list[dict]:
    return [{"name": "model", "mountPath": layout.OUTPUT_MOUNT, "readOnly": True}] if s.model_claim else []


def _model_volumes(s: Serving) -> list[dict]:
    return ([{"name": "model", "persistentVolumeClaim": {"claimName": s.model_claim, "readOnly": True}}]
            if s.model_claim else [])


def _resources(s: Serving) -> dict:
    # The device plugin injects /dev/xpuctrl and the allocated /dev/xpuN; the server builds a predictor per card.
    return {"resources": {"limits": {devices.K8S_RESOURCE: s.xpus_per_replica}}} if s.xpus_per_replica else {}


def deployment(s: Serving) -> list[dict]:
    """A Deployment and its ClusterIP Service."""
    container = {"name": "serve", "image": s.image, "args": s.serve_args(),
                 "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                 **_resources(s), **probes(),
                 # preStop + drain + margin = grace (module docstring): out of the endpoints, then SIGTERM.
                 "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
                 "securityContext": security_context(),
                 "volumeMounts": _scratch_mounts() + _model_mounts(s)}
    pod = {"terminationGracePeriodSeconds": GRACE_SECONDS, "automountServiceAccountToken": False,
           "containers": [container], "volumes": _scratch_volumes(s) + _model_volumes(s)}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": s.name, "labels": _labels(s)},
              "spec": {"replicas": s.replicas, "selector": {"matchLabels": _labels(s)},
                       # A new pod first, then an old one stopped: no capacity lost during a rollout (with
                       # cards, the new pod waits for K free ones while the old ones keep serving).
                       "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                       "template": {"metadata": {"labels": _labels(s)}, "spec": pod}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": s.name, "labels": _labels(s)},
               "spec": {"type": "ClusterIP", "selector": _labels(s),
                        "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]}}
    return [deploy, service]


def kserve(s: Serving) -> list[dict]:
    """A ServingRuntime (how to run the image; V2) and the InferenceService that uses it."""
    runtime = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
               "metadata": {"name": s.name, "labels": _labels(s)},
               "spec": {"supportedModelFormats": [{"name": MODEL_FORMAT, "autoSelect": False}],
                        "protocolVersions": ["v2"], "multiModel": False,
                        "containers": [{"name": "kserve-container", "image": s.image, "args": s.serve_args(),
                                        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                                        **probes(), "securityContext": security_context(),
                                        "volumeMounts": _scratch_mounts()}],
                        "volumes": _scratch_volumes(s)}}
    model = {"modelFormat": {"name": MODEL_FORMAT}, "runtime": s.name, "protocolVersion": "v2", **_resources(s)}
    if s.model_claim:
        model["volumeMounts"] = _model_mounts(s)
    predictor = {"minReplicas": s.replicas, "maxReplicas": s.replicas, "model": model}
    if s.model_claim:
        predictor["volumes"] = _model_volumes(s)
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": s.name, "labels": _labels(s)}, "spec": {"predictor": predictor}}
    return [runtime, isvc]


def closed(schema):
    """The schema with every object that lists properties (and keeps no unknown fields) closed."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _kserve_validator(kind: str):
    import jsonschema
    schema = json.loads(KSERVE_SCHEMAS[kind].read_text())
    return jsonschema.Draft7Validator(closed({k: v for k, v in schema.items() if k not in ("$comment", "x-source")}))


def problems(documents: list[dict]) -> list[str]:
    """Schema problems of the generated documents (empty when valid)."""
    import kubernetes_validate

    found = []
    for doc in documents:
        where = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if doc.get("kind") in KSERVE_SCHEMAS:
            source = json.loads(KSERVE_SCHEMAS[doc["kind"]].read_text())["x-source"]
            if doc.get("apiVersion") != f"{source['group']}/{source['version']}":
                found.append(f"{where}: apiVersion {doc.get('apiVersion')!r}, not {source['group']}/{source['version']}")
            errors = _kserve_validator(doc["kind"]).iter_errors(doc)
            found += [f"{where}: {'.'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in errors]
        else:
            found += k8s._k8s_problems(doc, where, kubernetes_validate)
    return found


def write(s: Serving, directory: Path) -> list[Path]:
    """Write both forms into directory, after checking them; returns the files."""
    files = {"inferenceservice.yaml": kserve(s), "deployment.yaml": deployment(s)}
    return k8s.write_checked(files, directory, lambda docs: problems(copy.deepcopy(docs)), header(s))


def header(s: Serving) -> str:
    return (f"# Generated by `invoke k8s --serve` for {s.name}: {s.replicas} replica(s), "
            f"{s.xpus_per_replica or 'no'} XPU(s) each, model {s.directory}"
            f"{f' from claim {s.model_claim}' if s.model_claim else ' in the image'}.\n"
            f"# Stop: preStop {PRESTOP_SECONDS} s (out of the endpoints) + drain {DRAIN_SECONDS} s + "
            f"{EXIT_MARGIN_SECONDS} s margin = terminationGracePeriodSeconds {GRACE_SECONDS} (Deployment form).\n")
