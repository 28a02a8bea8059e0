"""The built-in synthetic benchmark: content, determinism, registration and a real domain shift."""

import numpy as np
from detectron2.data import DatasetCatalog
from images import read_image

from vltseg_d2.data.synthetic import generate, render_frame
from vltseg_d2.data.synthetic_domains import TARGET_DOMAINS


def test_deterministic_by_seed():
    a_label, a_images = render_frame(3, "val", seed=5, height=64, width=128)
    b_label, b_images = render_frame(3, "val", seed=5, height=64, width=128)
    c_label, _ = render_frame(3, "val", seed=6, height=64, width=128)
    np.testing.assert_array_equal(a_label, b_label)
    for d in a_images:
        np.testing.assert_array_equal(a_images[d], b_images[d])
    assert not np.array_equal(a_label, c_label)


def test_scenes_have_many_classes_in_a_plausible_layout():
    labels = [render_frame(i, "train", seed=0, height=128, width=256)[0] for i in range(20)]
    present = set(np.unique(np.stack(labels))) - {255}
    assert len(present) >= 12, present
    stacked = np.stack(labels)
    top, bottom = stacked[:, :10], stacked[:, -10:]
    assert (top == 10).mean() > 0.5  # sky at the top
    assert (bottom == 0).mean() > 0.3 and (top == 0).mean() == 0  # road at the bottom, never at the top


def test_generated_splits_are_registered_and_reused(use_synthetic):
    source = DatasetCatalog.get("synthetic_source_train")
    assert len(source) == 24
    for domain in TARGET_DOMAINS:
        records = DatasetCatalog.get(f"synthetic_{domain}_val")
        assert len(records) == 8
        label = read_image(records[0]["sem_seg_file_name"])
        assert label.shape == (96, 192) and label.dtype == np.uint8
    again = generate(use_synthetic, num_train=24, num_val=8, height=96, width=192, seed=0, nproc=1)
    assert again["reused"]


def _features(img, h, w):
    """Quantised colour (8 levels per channel) and vertical position (4 bands) -> one bin id."""
    q = (img.reshape(-1, 3) * 7.999).astype(int)
    band = np.repeat(np.arange(h) * 4 // h, w)
    return ((q[:, 0] * 8 + q[:, 1]) * 8 + q[:, 2]) * 4 + band


def test_domain_shift_is_real():
    """A per-pixel colour+position classifier fitted on source loses clearly more on every target."""
    h, w, nbins = 64, 128, 8 * 8 * 8 * 4
    counts = np.zeros((nbins, 256), np.int64)
    for i in range(30):
        label, images = render_frame(i, "train", seed=1, height=h, width=w)
        np.add.at(counts, (_features(images["source"], h, w), label.ravel()), 1)
    predict = counts.argmax(1)

    accuracy = {}
    frames = [render_frame(i, "val", seed=1, height=h, width=w) for i in range(8)]
    for domain in ("source",) + TARGET_DOMAINS:
        correct = sum((predict[_features(imgs[domain], h, w)] == lab.ravel()).sum() for lab, imgs in frames)
        accuracy[domain] = correct / (8 * h * w)
    assert accuracy["source"] > 0.6, accuracy
    for domain in TARGET_DOMAINS:
        assert accuracy[domain] < accuracy["source"] - 0.15, accuracy
