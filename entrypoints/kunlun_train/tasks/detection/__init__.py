"""Object detection (YOLOv3 on VOC) and instance segmentation (Mask R-CNN on COCO) the way PaddleDetection trains them.

spec.py is Paddle-free (the CLI reads it first); adapter.py is the Paddle Task; inference.py the
pre- and post-processing `predict` and the server run. This file imports nothing: importing spec.py
must not import Paddle."""
