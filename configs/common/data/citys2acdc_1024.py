"""Cityscapes -> ACDC (fog, night, rain, snow) at 1024 (Rein protocol): full-resolution testing."""

from .semseg import dataloader, short_edge_scales

dataloader.train.dataset.names = "cityscapes_train"
dataloader.train.mapper.augmentations.update(crop_size=(1024, 1024), short_edges=short_edge_scales(1024), max_size=4096)
dataloader.test_datasets = ["cityscapes_val", "acdc_fog_val", "acdc_night_val", "acdc_rain_val", "acdc_snow_val"]
dataloader.in_domain = ["cityscapes_val"]
dataloader.update(test_protocol_name="full_resolution", test_protocols={})  # 2048x1024 and 1920x1080 as they are
