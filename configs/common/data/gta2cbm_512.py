"""GTA5 -> Cityscapes / BDD100K / Mapillary at 512, evaluated under the Rein protocol."""

from .protocols import REIN
from .semseg import dataloader, short_edge_scales

dataloader.train.dataset.names = "gta5_train"
dataloader.train.mapper.augmentations.update(crop_size=(512, 512), short_edges=short_edge_scales(512), max_size=2048)
dataloader.test_datasets = ["cityscapes_val", "bdd_val", "mapillary_val_half"]
dataloader.update(test_protocol_name=REIN["name"], test_protocols=REIN["resize"])
