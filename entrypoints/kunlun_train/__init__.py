"""The training entrypoint that runs inside the images (`python -m kunlun_train`).

Everything here except the suite trainers (`trainers/`) imports neither Paddle nor a suite, so
the argument handling, recipes, datasets, CPU detection and log format are unit-tested on the
host without Docker."""
