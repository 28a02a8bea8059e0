"""The two evaluation protocols GTA -> Cityscapes / BDD100K / Mapillary is reported under.

They differ by ~2 mIoU for the same Rein model (64.3 vs 66.1), so every table names its protocol.
Each is ``dict(name, resize)``, ``resize`` mapping a dataset to ``inference_augmentations``
keyword arguments (aspect kept; an empty dict = as is). detectron2's ``ResizeShortestEdge(s, max)``
scales by ``min(s / short, max / long)``, which is mmsegmentation's ``Resize(scale=(max, s),
keep_ratio=True)`` rule (up- or down-scaling), so these reproduce the reference pipelines:

- ``REIN`` (Rein, CVPR 2024): Cityscapes 2048x1024 -> 1024x512, BDD100K 1280x720 as is, the
  half-resolution Mapillary val (``mapillary_val_half``) -> long edge 1024 / short edge 512.
- ``FULL_RESOLUTION`` (tqdm ECCV 2024, SoMA CVPR 2025 configs: ``Resize(scale=(2048, 1024),
  keep_ratio=True)`` for Cityscapes and Mapillary, BDD at 1280x720): Cityscapes at 2048x1024,
  BDD100K as is, the half-resolution Mapillary val scaled up to short edge 1024 / long <= 2048.
"""

REIN = dict(
    name="rein",
    resize={
        "cityscapes_val": dict(short_edge=512, max_size=1024),
        "bdd_val": {},
        "mapillary_val_half": dict(short_edge=512, max_size=1024),
    },
)

FULL_RESOLUTION = dict(
    name="full_resolution",
    resize={
        "cityscapes_val": dict(short_edge=1024, max_size=2048),
        "bdd_val": {},
        "mapillary_val_half": dict(short_edge=1024, max_size=2048),
    },
)
