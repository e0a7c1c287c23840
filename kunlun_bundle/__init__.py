"""Host-side logic of the Kunlun training bundle. The tasks (tasks.py) only parse arguments and call
these. Core modules at the top, one subpackage per stage of an image's life:

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
  training/   training in the images: run, multinode, devices (Kunlun cards, CDI), k8s
  publishing/ `invoke publish`: plan (and gate), smoke, sbom, layer, push, registry
  host/       the host: its facts (binfmt, tools, disk), cache, doctor

The core modules import none of the subpackages; images/ and training/ use containers/ and host/;
publishing/ uses images/ and containers/; only the doctor (host/) looks at training/ (the cards).
"""
