"""Language models the way PaddleNLP trains them (text-classification fine-tuning, masked-LM pretraining).

spec.py is Paddle-free (the CLI reads it first); adapter.py is the Paddle Task; inference.py the
pre- and post-processing `predict` and the server run. This file imports nothing: importing spec.py
must not import Paddle."""
