"""The training entrypoint that runs inside the images (`python -m kunlun_train`).

Everything here except the engine and the task adapters (`engine.py`, `tasks/<task>/adapter.py` and
what they import: `tasks/synthetic.py`, `tasks/detection/data.py`, `metrics.py`) imports neither Paddle
nor a suite at module level, so the argument handling, recipes, datasets, CPU detection and log format
are unit-tested on the host without Docker."""
