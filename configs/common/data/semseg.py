"""Data loaders for semantic segmentation: training on one source, testing on each target.

Experiments set the datasets, crop, scales, batch and each target's test resize protocol.
"""

from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, get_detection_dataset_dicts
from omegaconf import OmegaConf

from vltseg_d2.data.loader import ResumableTrainLoader
from vltseg_d2.data.mapper import SemSegDatasetMapper, train_augmentations
from vltseg_d2.evaluation import SemSegIoUEvaluator

dataloader = OmegaConf.create()
dataloader.train = L(ResumableTrainLoader)(
    dataset=L(get_detection_dataset_dicts)(names="???", filter_empty=False),
    mapper=L(SemSegDatasetMapper)(
        augmentations=L(train_augmentations)(
            crop_size=(512, 512), short_edges=[512], max_size=2048, cat_max_ratio=0.75
        ),
        is_train=True,
        pad_to="${.augmentations.crop_size}",
    ),
    total_batch_size=4,
    num_workers=4,
    seed=0,
)
# Filled per dataset by Trainer.build_test_loader / build_evaluator: test.dataset.names,
# test.mapper.augmentations (from test_protocols) and evaluator.dataset_name.
dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names=None, filter_empty=False),
    mapper=L(SemSegDatasetMapper)(is_train=False),
    num_workers=4,
)
dataloader.evaluator = L(SemSegIoUEvaluator)(dataset_name=None)
dataloader.test_datasets = []  # evaluated one by one, summarised in the cross-domain table
dataloader.in_domain = []  # listed in the table but left out of the mean over target domains
dataloader.test_protocols = {}  # dataset -> inference_augmentations kwargs (short_edge, max_size)
dataloader.test_protocol_name = "as_is"  # named in every cross-domain table (see protocols.py)


def short_edge_scales(base: int, n: int = 16):
    """The recipes' 16 short-edge scales: base * 0.5 .. base * 2.0 in steps of base * 0.1."""
    return [int(base * x * 0.1) for x in range(5, 5 + n)]
