"""The VOC and COCO metrics of PaddleDetection, merged across ranks (Metric.merge)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import paddle

from ..contract import Metric


def numpy(value):
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


class VOCMap(Metric):
    """PaddleDetection's VOC metric (ppdet.metrics.VOCMetric: per-class score/true-positive lists and
    ground-truth counts in its DetectionMAP, 11-point interpolated mAP at IoU 0.5, difficult boxes
    excluded). The lists concatenate and the counts add across ranks: the merge is exact."""

    def __init__(self, label_list: Path, classes: int, overlap: float, map_type: str):
        from ppdet.metrics import VOCMetric
        self.voc = VOCMetric(label_list=str(label_list), class_num=classes, overlap_thresh=overlap,
                             map_type=map_type, evaluate_difficult=False)

    def update(self, outputs, batch) -> None:
        self.voc.update(batch, {"bbox": numpy(outputs["bbox"]), "bbox_num": numpy(outputs["bbox_num"])})

    def state(self):
        dm = self.voc.detection_map
        return dm.class_score_poss, dm.class_gt_counts

    def merge(self, states: list) -> dict[str, float]:
        dm = self.voc.detection_map
        dm.reset()
        for poss, counts in states:
            for c in range(dm.class_num):
                dm.class_score_poss[c] += poss[c]
                dm.class_gt_counts[c] += counts[c]
        dm.accumulate()
        return {"mAP": float(dm.get_map())}


class COCOAP(Metric):
    """PaddleDetection's COCO metric: the detections as COCO results (coco_utils.get_infer_results,
    category ids from the annotation file), evaluated with pycocotools through coco_utils.cocoapi_eval
    against DataLoader.val_annotations; bbox AP and, with masks, segm AP (AP@[.5:.95]). Each rank's
    results are concatenated before evaluation."""

    def __init__(self, annotations: Path, clsid2catid: dict):
        self.annotations, self.clsid2catid = annotations, clsid2catid
        self.results = {"bbox": [], "mask": []}

    def update(self, outputs, batch) -> None:
        from ppdet.metrics.coco_utils import get_infer_results
        outs = {k: numpy(v) for k, v in outputs.items()}
        outs["im_id"] = numpy(batch["im_id"])
        found = get_infer_results(outs, self.clsid2catid)
        for key in self.results:
            self.results[key] += found.get(key, [])

    def state(self):
        return self.results

    def merge(self, states: list) -> dict[str, float]:
        from ppdet.metrics.coco_utils import cocoapi_eval
        results = {"bbox": [], "mask": []}
        for state in states:
            for key in results:
                results[key] += state[key]
        out = {}
        for key, style, name in (("bbox", "bbox", "bbox_AP"), ("mask", "segm", "segm_AP")):
            rows = [r for r in results[key] if r.get("category_id", -1) in self.clsid2catid.values()]
            if not rows:
                out[name], out[f"{name}50"] = 0.0, 0.0
                continue
            with contextlib.redirect_stdout(io.StringIO()):   # pycocotools' summary table
                stats = cocoapi_eval(rows, style, anno_file=str(self.annotations))
            out[name], out[f"{name}50"] = float(max(0.0, stats[0])), float(max(0.0, stats[1]))
        return out
