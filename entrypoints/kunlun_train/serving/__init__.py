"""`serve`: the Open Inference Protocol (KServe V2) over HTTP for an exported model.

protocol (V2 JSON, no web framework) -> batching (queue, workers, one predictor each) -> app (Starlette
routes, metrics, lifecycle) -> backend (paddle.inference); cli parses the flags. Only backend imports
Paddle, so everything else is tested on the host with a numpy stand-in."""
