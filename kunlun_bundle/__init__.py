"""Host-side logic of the Kunlun training bundle: one module per concern.

  errors    one error hierarchy, each class with its exit code
  matrix    matrix.yaml: schema, validation with file:line messages, the typed model
  arch      architecture names, aliases and the `native` / `all` keywords
  naming    image names and tags (the only place they are spelled)
  chain     the image chain of a cell: base -> paddle -> suite -> model
  render    templates/ -> dockerfiles/, and the drift check
  lock      resolving environments to hash-pinned lock files
  fetch     downloading and verifying the locked wheels into the cache
  context   reproducible build-context tarballs
  base      bootstrapping the OS base image from Debian packages
  docker_api  the small wrapper around the Docker SDK
  build     building the image chain with progress and a summary
  run       running a model's container with mounts filled in
  doctor    host checks, each with what to do about a failure
  ui        console output: timed steps, tables
"""
