"""Regenerate kserve-*.schema.json from KServe's CRDs: the openAPIV3Schema of one served version,
pruned to the fields the serving manifests use (serving_k8s.py). Not imported by the bundle; run it
by hand when KServe or the manifests change:

    git clone https://github.com/kserve/kserve && git -C kserve rev-parse HEAD
    python3 kunlun_bundle/training/schemas/extract_kserve.py kserve COMMIT

What is kept is the third item of each SOURCES entry below: at each level only the named properties (True = the whole subtree as
upstream has it, a dict = recurse); everything else in a kept object (types, required, enums,
x-kubernetes-* markers) is copied unchanged. serving_k8s.problems() then treats every object
that has properties and no x-kubernetes-preserve-unknown-fields as closed (additionalProperties
false, as `kubectl apply` with strict field validation does), so a field we pruned away is
reported rather than silently accepted."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent

_CONTAINER = {"name": True, "image": True, "args": True, "env": True, "ports": True, "livenessProbe": True,
              "readinessProbe": True, "securityContext": True, "volumeMounts": True, "resources": True}
_VOLUME = {"name": True, "emptyDir": True, "persistentVolumeClaim": True}

SOURCES = {
    "kserve-inferenceservice.schema.json": (
        "config/crd/full/serving.kserve.io_inferenceservices.yaml", "v1beta1",
        {"apiVersion": True, "kind": True, "metadata": True,
         "spec": {"predictor": {"minReplicas": True, "maxReplicas": True, "volumes": _VOLUME,
                                "model": {"modelFormat": True, "runtime": True, "protocolVersion": True,
                                          "resources": True, "volumeMounts": True}}}}),
    "kserve-servingruntime.schema.json": (
        "config/crd/full/serving.kserve.io_servingruntimes.yaml", "v1alpha1",
        {"apiVersion": True, "kind": True, "metadata": True,
         "spec": {"supportedModelFormats": True, "protocolVersions": True, "multiModel": True,
                  "containers": _CONTAINER, "volumes": _VOLUME}}),
}


def prune(schema: dict, keep, where: str = "") -> dict:
    if keep is True:
        return schema
    if schema.get("type") == "array":
        return {**schema, "items": prune(schema["items"], keep, where + "[]")}
    props = schema.get("properties", {})
    missing = sorted(set(keep) - set(props))
    if missing:
        raise SystemExit(f"{where or '.'}: upstream has no {', '.join(missing)}")
    out = {**schema, "properties": {name: prune(props[name], sub, f"{where}.{name}") for name, sub in keep.items()}}
    if "required" in schema:
        out["required"] = [r for r in schema["required"] if r in keep]
        dropped = set(schema["required"]) - set(keep)
        if dropped:
            raise SystemExit(f"{where}: pruned required field(s) {sorted(dropped)}")
    return out


def paths(keep, prefix: str = "") -> list[str]:
    out = []
    for name, sub in keep.items():
        out += [prefix + name] if sub is True else paths(sub, f"{prefix}{name}.")
    return out


def main(checkout: str, commit: str) -> None:
    for target, (path, version, keep) in SOURCES.items():
        crd = yaml.safe_load((Path(checkout) / path).read_text())
        [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
        schema = prune(served["schema"]["openAPIV3Schema"], keep)
        header = {"$comment": f"Extracted for this bundle from KServe's CRD (kserve/kserve, {path}, commit {commit}, "
                              f"spec.versions[{version}].schema.openAPIV3Schema), pruned to the fields the serving "
                              "manifests use: only " + ", ".join(paths(keep)) + " are kept, each kept subtree as "
                              "upstream has it (status and every other field dropped). Regenerate with "
                              "extract_kserve.py.",
                  "x-source": {"repo": "kserve/kserve", "path": path, "commit": commit, "version": version,
                               "group": crd["spec"]["group"], "kind": crd["spec"]["names"]["kind"]}}
        (HERE / target).write_text(json.dumps({**header, **schema}, indent=1, sort_keys=False) + "\n")
        print(f"wrote {target}: {len(json.dumps(schema))} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:3])
