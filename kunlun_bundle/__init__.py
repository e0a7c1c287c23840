"""Host-side logic of the Kunlun training bundle. The tasks (tasks.py) only parse arguments and call
these. Core modules first, then one subpackage per stage of an image's life:

  errors      one error hierarchy, each class with its exit code; tasks.py catches it once
  ui          console output: timed steps, tables (progress to stderr, data to stdout)
  matrix      matrix.yaml: schema, validation with file:line messages, the typed model
  arch        architecture names, aliases and the `native` / `all` keywords
  naming      image names and tags (the only place they are spelled)
  layout      where things live inside the images
  overview    `invoke list`: the matrix as tables

  images/     making images: kinds (the layer kinds), chain, labels, render, lock, fetch, context,
              rootfs, build
  containers/ the Docker engine: docker_api (connect, look up, build), container (the one way a
              container is started, followed, waited for and removed)
  training/   training in the images: run, multinode, devices (Kunlun cards, CDI), k8s, serving_k8s
  publishing/ `invoke publish`: plan (and gate), smoke, sbom, layer, push, registry
  host/       the host: its facts (binfmt, tools, disk, host packages), cache, archives
  doctor      `invoke doctor`: every host check with its fix; above the subpackages, as it reports on them

Layered bottom-up, each layer importing only layers below it: the core modules (they import none of
the subpackages); host/; containers/; images/; training/ and publishing/ (side by side: neither uses
the other); the doctor on top. `python3 bench/structure.py` shows it: no import circles, no upward imports.
"""
