"""Image classification the way PaddleClas trains it.

spec.py is Paddle-free (the CLI reads it first); adapter.py is the Paddle Task; inference.py the
pre- and post-processing `predict` and the server run. This file imports nothing: importing spec.py
must not import Paddle."""
