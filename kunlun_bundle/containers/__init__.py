"""Talking to the Docker engine.

  docker_api  connect with a clear error, look up an image, build from a context tarball (network off)
  images_archive  `invoke save` / `invoke load`: image archives with a checked manifest, same ids after load
  container   the one way a container is run: start, follow, wait with a timeout, always remove
"""
from . import container, docker_api, images_archive  # noqa: F401
