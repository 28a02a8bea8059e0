"""GTA5 -> Cityscapes / BDD100K / Mapillary at 512 (Rein protocol)."""

from .semseg import dataloader, short_edge_scales

dataloader.train.dataset.names = "gta5_train"
dataloader.train.mapper.augmentations.update(crop_size=(512, 512), short_edges=short_edge_scales(512), max_size=2048)
dataloader.test_datasets = ["cityscapes_val", "bdd_val", "mapillary_val_half"]
dataloader.test_protocols = {
    "cityscapes_val": dict(short_edge=512, max_size=1024),  # 2048x1024 -> 1024x512
    "bdd_val": {},  # 1280x720 as is
    "mapillary_val_half": dict(short_edge=512, max_size=1024),
}
