"""Making images, from matrix.yaml to a built chain: base -> paddle -> suite -> model.

  kinds     the four layer kinds, each a type that owns its template, lock, context, labels, parent
  chain     a cell's layers (Layer) and which cells a task means
  labels    every image label: keys, when each is written, one LABEL writer and escaping
  render    templates/ -> dockerfiles/, and the drift check
  lock      resolving a layer's environment to a hash-pinned lock file
  fetch     downloading and verifying the locked wheels and runtime archives into the cache
  context   reproducible build-context tarballs
  rootfs    bootstrapping the Debian rootfs of a base with mmdebstrap
  build     building the chain with the network off, progress and a summary
"""
from . import build, chain, context, fetch, kinds, labels, lock, render, rootfs  # noqa: F401
