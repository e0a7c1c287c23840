"""`invoke k8s MODEL --nodes N --xpus-per-node K`: Kubernetes manifests for a multi-node job, in two
forms that run the same image the same way (the entrypoint's --nnodes/--master/--rank, Paddle's
launcher doing the rendezvous on rank 0):

  paddlejob.yaml    a PaddleJob for PaddlePaddle's operator (batch.paddlepaddle.org/v1)
  indexed-job.yaml  for clusters without the operator: a headless Service and an Indexed Job; each
                    pod's rank is its completion index (JOB_COMPLETION_INDEX), its name
                    <job>-<index>.<service> in DNS, and PADDLE_TRAINER_ENDPOINTS lists them all

Kunlun cards are requested through the device plugin's resource (devices.K8S_RESOURCE); /dev/shm
is a memory volume (the launcher's workers share tensors through it); the dataset and the output
are volumes (PersistentVolumeClaims), the output shared by every rank so --resume works after a restart.
Both are checked against schemas before they are written (kubernetes-validate for Kubernetes
kinds; kunlun_bundle/schemas/paddlejob.schema.json for the PaddleJob)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from .. import layout
from ..errors import BundleError, UsageError
from . import devices

PORT = 8090                       # rank 0's rendezvous port
K8S_VERSION = "1.30"              # the API version the manifests are checked against
SCHEMA = Path(__file__).with_name("schemas") / "paddlejob.schema.json"


def count(flag: str, value, default: int) -> int:
    """A whole-number flag as the task got it (a string when given, None when not)."""
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} {value!r}: not a whole number") from None


@dataclass(frozen=True)
class Job:
    name: str                     # DNS-1123 label: the job, its service and its pods' prefix
    image: str
    nodes: int
    xpus_per_node: int = 0
    data_claim: Optional[str] = None      # PersistentVolumeClaim with the dataset (mounted read-only)
    output_claim: Optional[str] = None    # PersistentVolumeClaim for checkpoints (shared by all ranks)
    shm: str = "2Gi"
    args: list[str] = field(default_factory=list)   # more entrypoint arguments, e.g. --steps 100

    def __post_init__(self):
        if self.nodes < 1:
            raise UsageError(f"--nodes {self.nodes}: at least 1")
        if self.xpus_per_node < 0:
            raise UsageError(f"--xpus-per-node {self.xpus_per_node}: 0 (CPU) or more")

    def entrypoint_args(self, master: str, rank: Optional[str]) -> list[str]:
        args = list(self.args)
        if self.data_claim:
            args += ["--data", layout.DATA_MOUNT]
        if self.output_claim:
            args += ["--output", layout.OUTPUT_MOUNT]
        if self.xpus_per_node > 1:
            args += ["--devices", str(self.xpus_per_node)]
        if self.nodes > 1:
            args += ["--nnodes", str(self.nodes), "--master", master] + (["--rank", rank] if rank else [])
        return args


def _container(job: Job, args: list[str], env: list[dict]) -> dict:
    container = {"name": "train", "image": job.image, "args": args, "env": env,
                 "ports": [{"name": "rendezvous", "containerPort": PORT}],
                 "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}
    if job.xpus_per_node:
        # The device plugin injects /dev/xpuctrl and the allocated /dev/xpuN; the entrypoint sees them.
        container["resources"] = {"limits": {devices.K8S_RESOURCE: job.xpus_per_node}}
    if job.data_claim:
        container["volumeMounts"].append({"name": "data", "mountPath": layout.DATA_MOUNT, "readOnly": True})
    if job.output_claim:
        container["volumeMounts"].append({"name": "output", "mountPath": layout.OUTPUT_MOUNT})
    return container


def _volumes(job: Job) -> list[dict]:
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": job.shm}}]
    if job.data_claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": job.data_claim, "readOnly": True}})
    if job.output_claim:
        volumes.append({"name": "output", "persistentVolumeClaim": {"claimName": job.output_claim}})
    return volumes


def _labels(job: Job) -> dict:
    return {"app.kubernetes.io/name": job.name, "app.kubernetes.io/part-of": "kunlun-bundle"}


def paddlejob(job: Job) -> dict:
    """The operator names worker pods <job>-worker-<i> and gives each a headless Service of that name
    (intranet: Service); it sets PADDLE_TRAINER_ID, which Kubernetes substitutes into --rank."""
    master = f"{job.name}-worker-0:{PORT}"
    args = job.entrypoint_args(master, "$(PADDLE_TRAINER_ID)")
    return {"apiVersion": "batch.paddlepaddle.org/v1", "kind": "PaddleJob",
            "metadata": {"name": job.name, "labels": _labels(job)},
            "spec": {"cleanPodPolicy": "OnCompletion", "intranet": "Service", "worker": {
                "replicas": job.nodes,
                "template": {"metadata": {"labels": _labels(job)},
                             "spec": {"containers": [_container(job, args, [])], "volumes": _volumes(job)}}}}}


def endpoints(job: Job) -> list[str]:
    """Every rank's address in the Indexed Job: pod hostname <job>-<i> under the headless Service."""
    return [f"{job.name}-{i}.{job.name}:{PORT}" for i in range(job.nodes)]


def indexed_job(job: Job) -> list[dict]:
    ends = endpoints(job)
    env = [{"name": "PADDLE_TRAINER_ENDPOINTS", "value": ",".join(ends)},
           {"name": "PADDLE_TRAINERS_NUM", "value": str(job.nodes)}]
    # No --rank: the entrypoint takes it from JOB_COMPLETION_INDEX, which the Job sets per pod.
    args = job.entrypoint_args(ends[0], None)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": job.name, "labels": _labels(job)},
               "spec": {"clusterIP": "None", "selector": {"job-name": job.name},
                        "publishNotReadyAddresses": True,   # ranks must resolve each other while starting
                        "ports": [{"name": "rendezvous", "port": PORT}]}}
    batch = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job.name, "labels": _labels(job)},
             "spec": {"completionMode": "Indexed", "completions": job.nodes, "parallelism": job.nodes,
                      "backoffLimit": 0,       # one failed rank fails the job; rerun it with --resume
                      "template": {"metadata": {"labels": _labels(job)},
                                   "spec": {"subdomain": job.name, "restartPolicy": "Never",
                                            "containers": [_container(job, args, env)],
                                            "volumes": _volumes(job)}}}}
    return [service, batch]


def problems(documents: list[dict]) -> list[str]:
    """Schema problems of the generated documents (empty when valid)."""
    import jsonschema
    import kubernetes_validate

    found = []
    for doc in documents:
        where = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if doc.get("kind") == "PaddleJob":
            validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
            found += [f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
            for role in ("worker", "ps", "heter"):
                if role in doc.get("spec", {}):
                    template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"{doc['metadata']['name']}-{role}"},
                                "template": doc["spec"][role]["template"]}
                    found += _k8s_problems(template, f"{where} {role} template", kubernetes_validate)
        else:
            found += _k8s_problems(doc, where, kubernetes_validate)
    return found


def _k8s_problems(doc: dict, where: str, kubernetes_validate) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.InvalidSchemaError as exc:   # e.g. an unknown kind
        return [f"{where}: {exc}"]
    return []


def write(job: Job, directory: Path) -> list[Path]:
    """Write both forms into directory, after checking them; returns the files."""
    files = {"paddlejob.yaml": [paddlejob(job)], "indexed-job.yaml": indexed_job(job)}
    return write_checked(files, directory, problems, f"# Generated by `invoke k8s` for {job.name}: {job.nodes} "
                         f"node(s), {job.xpus_per_node or 'no'} XPU(s) each.\n")


def write_checked(files: dict[str, list], directory: Path, check, header: str) -> list[Path]:
    """Write each file's documents under `header`, only once `check` finds no problem in any."""
    found = [p for docs in files.values() for p in check(docs)]
    if found:   # a bug of ours, not the user's input: say so plainly
        raise BundleError("the generated manifests are not valid:\n  " + "\n  ".join(found))
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, docs in files.items():
        path = directory / name
        path.write_text(header + yaml.safe_dump_all(docs, sort_keys=False))
        written.append(path)
    return written
