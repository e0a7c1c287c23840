"""Training in the images: on this host, across hosts, on Kubernetes.

  run        one container with the mounts, CPU limits, devices and arguments filled in
  multinode  an N-node job on this Docker host: N containers on a private network
  devices    Kunlun cards: discovery, the device options for a container, the CDI spec
  k8s        Kubernetes manifests (a PaddleJob; an Indexed Job + headless Service), schema-checked
  serving_k8s  manifests that serve an exported model (KServe ServingRuntime + InferenceService;
             a Deployment + Service), schema-checked
"""
from . import devices, k8s, multinode, run, serving_k8s  # noqa: F401
