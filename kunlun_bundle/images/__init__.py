"""Making images, from matrix.yaml to a built chain: base -> paddle -> suite -> model, and the serving
chain base -> paddle -> serving -> package.

  kinds     the layer kinds, each a type that owns its template, lock, context, labels, parent
  chain     a cell's layers (Layer) and which cells a command's --model/--flavour/--arch mean
  labels    every image label: keys, when each is written, one LABEL writer and escaping
  render    templates/ -> dockerfiles/, and the drift check
  lock      resolving a layer's environment to a hash-pinned lock file
  fetch     downloading and verifying the locked wheels and runtime archives into the cache
  context   reproducible build-context tarballs
  debian    the Debian base's lock: resolving it from the mirror's Packages index, fetching the .debs
  rootfs    bootstrapping the Debian rootfs of a base with mmdebstrap
  assemble  the image itself from the Dockerfile's final stage, deterministically (same inputs, same id)
  build     building the chain: install stages by Docker (network off), images assembled; a summary
  bundle    `invoke bundle export/import`: every input of some cells in one checked archive
  repro     `invoke repro`: build from scratch again and compare, naming the layer and file that differ
  packaging `invoke package`: an export read and checked, for the serving image the package kind builds
"""
from . import assemble, build, bundle, chain, context, debian, fetch, kinds, labels, lock, packaging, render, repro, rootfs  # noqa: F401
