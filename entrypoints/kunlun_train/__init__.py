"""The training entrypoint that runs inside the images (`python -m kunlun_train`).

Everything here except the engine and the task adapters (`engine.py`, `tasks/*.py` but
`tasks/__init__.py`) imports neither Paddle nor a suite, so
the argument handling, recipes, datasets, CPU detection and log format are unit-tested on the
host without Docker."""
