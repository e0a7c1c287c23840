"""Tiny datasets in the real formats (classification lists, VOC, COCO, segmentation lists, text),
written with the standard library only, for the unit tests and the image tests alike."""
