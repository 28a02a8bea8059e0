"""The training pipeline equals mmsegmentation 1.2.2's, step by step and as a whole: each expected
value below is computed here from the reference's formulas (uint8 arithmetic by hand, OpenCV
resizes), with the reference's random calls in the reference's order."""

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from PIL import Image

from vltseg_d2.data.crop import CategoryAreaCrop
from vltseg_d2.data.mapper import SemSegDatasetMapper, inference_augmentations, train_augmentations
from vltseg_d2.data.resize import RandomShortEdgeResize, rescale_size, shortest_edge_target
from vltseg_d2.data.transforms import PhotometricDistortion, PhotometricTransform
from vltseg_d2.modeling.meta_arch import MaskFormer

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def test_sizes_follow_mmseg_rounding_twice():
    # GTA5 at short edge 256: 256 / 1052 * 1914 = 465.77 -> 466 wide, then imrescale keeps it
    assert shortest_edge_target(1052, 1914, 256, 2048) == (256, 466)
    assert rescale_size(1052, 1914, 466, 256) == (256, 466)
    # 200x846 at short edge 512: the long edge is capped to 2048 (484.16 -> 484 high), and
    # imrescale's factor min(2048 / 846, 484 / 200) = 2.42 makes it 846 * 2.42 = 2047.3 -> 2047
    assert shortest_edge_target(200, 846, 512, 2048) == (484, 2048)
    assert rescale_size(200, 846, 2048, 484) == (484, 2047)
    # test resize (1024, 512) of a 613x817 frame: factor min(1024/817, 512/613) = 0.8352 -> 682x512
    assert rescale_size(613, 817, 1024, 512) == (512, 682)


def test_resize_is_opencv_bilinear_for_images_and_nearest_for_labels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (200, 846, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (200, 846), dtype=np.uint8)
    np.random.seed(1)
    t = RandomShortEdgeResize([256, 512], 2048).get_transform(img)
    np.random.seed(1)
    assert [256, 512][np.random.randint(2)] == 512  # the reference's draw: randint(len(scales))
    np.testing.assert_array_equal(t.apply_image(img), cv2.resize(img, (2047, 484), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_array_equal(
        t.apply_segmentation(label), cv2.resize(label, (2047, 484), interpolation=cv2.INTER_NEAREST)
    )
    (test_resize,) = inference_augmentations(512, 1024)
    frame = rng.integers(0, 256, (613, 817, 3), dtype=np.uint8)
    small = test_resize.get_transform(frame).apply_image(frame)
    np.testing.assert_array_equal(small, cv2.resize(frame, (682, 512), interpolation=cv2.INTER_LINEAR))
    # detectron2's ResizeTransform (PIL, antialiased when it shrinks) gives other pixels
    pil = np.asarray(Image.fromarray(frame).resize((682, 512), Image.BILINEAR))
    assert np.abs(pil.astype(int) - small).max() > 2


def _draws(seed, n):
    np.random.seed(seed)
    return [(np.random.randint(0, 41), np.random.randint(0, 57)) for _ in range(n)]


def test_crop_keeps_the_eleventh_draw_when_ten_checks_fail():
    label = np.full((72, 120), 3, np.uint8)  # one class everywhere: every check fails
    np.random.seed(5)
    t = CategoryAreaCrop((32, 64), 0.75, 255).get_transform(np.zeros((72, 120, 3), np.uint8), label)
    y0, x0 = _draws(5, 11)[10]  # offsets: randint(margin_h + 1) then randint(margin_w + 1)
    assert (t.y0, t.x0, t.h, t.w) == (y0, x0, 32, 64)


def _passes(crop):
    """The reference's check: more than one class besides 255, the largest under 75%."""
    values, counts = np.unique(crop, return_counts=True)
    counts = counts[values != 255]
    return len(counts) > 1 and counts.max() / counts.sum() < 0.75


def test_crop_stops_at_the_first_draw_that_passes():
    draws = _draws(4, 11)
    label = np.full((72, 120), 3, np.uint8)
    y, x = draws[2]
    label[y : y + 32, x : x + 64] = np.arange(64)[None] % 2  # classes 0 and 1, half each
    label[y : y + 8, x : x + 64] = 255  # ignored pixels do not count
    first = next(i for i, (a, b) in enumerate(draws) if _passes(label[a : a + 32, b : b + 64]))
    assert first == 2  # this seed's first two draws fail: the crop is the second re-draw
    np.random.seed(4)
    t = CategoryAreaCrop((32, 64), 0.75, 255).get_transform(np.zeros((72, 120, 3), np.uint8), label)
    assert (t.y0, t.x0) == draws[first]


def _by_hand(img, brightness, contrast, saturation, hue, contrast_first):
    """The reference's steps on an RGB uint8 array, one float32 pass each, truncating to uint8."""

    def convert(x, alpha=1, beta=0):
        return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    if brightness is not None:
        img = convert(img, beta=brightness)
    if contrast_first and contrast is not None:
        img = convert(img, alpha=contrast)
    if saturation is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 1] = convert(hsv[..., 1], alpha=saturation)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if hue is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + hue) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and contrast is not None:
        img = convert(img, alpha=contrast)
    return img


def test_photometric_steps_truncate_after_each_step():
    img = np.array([[[10, 200, 255], [0, 128, 37]], [[250, 251, 3], [99, 100, 101]]], np.uint8)
    # brightness +10.5 then contrast x1.5: 37 -> 47.5 -> 47 (truncated) -> 70.5 -> 70, where one
    # composed float pass would give (37 + 10.5) * 1.5 = 71.25 -> 71; 128 -> 138 -> 207; 200 -> 255
    out = PhotometricTransform(brightness_delta=10.5, contrast=1.5, contrast_first=True).apply_image(img)
    assert out[0, 0].tolist() == [30, 255, 255] and out[0, 1].tolist() == [15, 207, 70]
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    for params in [(-20.5, 1.37, 0.61, -11, True), (7.25, 0.55, 1.42, 17, False), (None, None, 0.7, None, True)]:
        np.testing.assert_array_equal(PhotometricTransform(*params).apply_image(img), _by_hand(img, *params))
    # saturation and hue in one HSV round trip would differ: two round trips are the reference's
    one_trip = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    one_trip[..., 1] = np.clip(one_trip[..., 1].astype(np.float32) * 0.61, 0, 255).astype(np.uint8)
    one_trip[..., 0] = (one_trip[..., 0].astype(int) - 11) % 180
    assert not np.array_equal(cv2.cvtColor(one_trip, cv2.COLOR_HSV2RGB), _by_hand(img, None, None, 0.61, -11, True))
    with pytest.raises(TypeError, match="uint8"):
        PhotometricTransform(brightness_delta=1.0).apply_image(img.astype(np.float32))


def _photometric_draws(r):
    """PhotoMetricDistortion.transform's random calls, in its order: (brightness, contrast,
    saturation, hue, contrast first); None where a step's randint(2) skipped it."""
    brightness = r.uniform(-32, 32) if r.randint(2) else None
    contrast_first = r.randint(2) == 1
    contrast = (r.uniform(0.5, 1.5) if r.randint(2) else None) if contrast_first else None
    saturation = r.uniform(0.5, 1.5) if r.randint(2) else None
    hue = r.randint(-18, 18) if r.randint(2) else None
    if not contrast_first:
        contrast = r.uniform(0.5, 1.5) if r.randint(2) else None
    return brightness, contrast, saturation, hue, contrast_first


def test_photometric_draws_are_the_references_in_its_order():
    img = np.zeros((4, 4, 3), np.uint8)
    aug = PhotometricDistortion()
    for seed in range(30):
        np.random.seed(seed)
        t = aug.get_transform(img)
        np.random.seed(seed)
        got = (t.brightness_delta, t.contrast, t.saturation, t.hue_delta, t.contrast_first)
        assert got == _photometric_draws(np.random)
    np.random.seed(0)
    hues = {aug.get_transform(img).hue_delta for _ in range(3000)} - {None}
    assert min(hues) == -18 and max(hues) == 17  # randint(-18, 18) excludes 18


def test_model_pads_the_normalised_image_with_zero_to_the_label_size():
    image = torch.full((3, 20, 30), 200, dtype=torch.uint8)
    mapper = SemSegDatasetMapper([], pad_to=(32, 48))
    label = mapper._pad_label(np.zeros((20, 30), np.uint8))
    assert label.shape == (32, 48) and (label[20:] == 255).all() and (label[:, 30:] == 255).all()
    instances = type("I", (), {"image_size": (32, 48)})()
    normalised = (image.float() - torch.tensor(MEAN).view(-1, 1, 1)) / torch.tensor(STD).view(-1, 1, 1)
    padded = MaskFormer._pad_to_label(normalised, instances)
    assert padded.shape == (3, 32, 48)
    assert (padded[:, 20:] == 0).all() and (padded[:, :, 30:] == 0).all()  # 0 = the mean colour, not black
    torch.testing.assert_close(padded[:, :20, :30], normalised)


def test_the_whole_training_chain_equals_the_reference_by_hand(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    label = rng.choice([0, 1, 2, 8, 255], size=(90, 160)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img.png")
    Image.fromarray(label).save(tmp_path / "lab.png")
    record = {"file_name": str(tmp_path / "img.png"), "sem_seg_file_name": str(tmp_path / "lab.png")}
    scales, crop = [40, 64, 96, 120], (64, 64)
    mapper = SemSegDatasetMapper(train_augmentations(crop, scales, max_size=400), pad_to=crop)
    for seed in range(12):
        np.random.seed(seed)
        out = mapper(dict(record))
        np.random.seed(seed)
        r = np.random
        short = scales[r.randint(len(scales))]
        h, w = shortest_edge_target(90, 160, short, 400)
        h, w = rescale_size(90, 160, max(h, w), min(h, w))
        img = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
        seg = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        ch, cw = min(64, h), min(64, w)
        for attempt in range(11):
            y0, x0 = r.randint(0, max(h - 64, 0) + 1), r.randint(0, max(w - 64, 0) + 1)
            if attempt == 10 or _passes(seg[y0 : y0 + ch, x0 : x0 + cw]):
                break
        img, seg = img[y0 : y0 + ch, x0 : x0 + cw], seg[y0 : y0 + ch, x0 : x0 + cw]
        if r.uniform() < 0.5:
            img, seg = img[:, ::-1], seg[:, ::-1]
        img = _by_hand(np.ascontiguousarray(img), *_photometric_draws(r))
        expected_seg = np.full(crop, 255, np.uint8)
        expected_seg[:ch, :cw] = seg
        np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), img)
        np.testing.assert_array_equal(out["sem_seg"].numpy(), expected_seg)


def test_train_augmentations_are_the_reference_chain():
    augs = train_augmentations((512, 512), [256, 512], max_size=2048)
    assert [type(a) for a in augs] == [RandomShortEdgeResize, CategoryAreaCrop, T.RandomFlip, PhotometricDistortion]
    assert augs[2].prob == 0.5 and augs[1].cat_max_ratio == 0.75 and augs[1].ignore_label == 255


def test_tqdms_ratio_resize_draws_a_continuous_ratio_of_the_images_own_size():
    """mmseg 0.x ``Resize(ratio_range=(0.5, 2.0))`` on a GTA5 frame (1914 x 1052), numpy seed 0:
    ratio = 0.5488135 * 1.5 + 0.5 = 1.3232203 -> target (2532, 1392) -> factor min(2532 / 1914,
    1392 / 1052) = 1.3228840 -> 2532 x 1392; then 1.5727840 -> (3010, 1654) -> factor
    1654 / 1052 = 1.5722433 -> 3009 x 1654 (the width loses one to the second rounding)."""
    import numpy as np

    from vltseg_d2.data.resize import RandomRatioResize

    np.random.seed(0)
    resize, frame = RandomRatioResize((0.5, 2.0)), np.zeros((1052, 1914, 3), np.uint8)
    sizes = [(t.new_h, t.new_w) for t in (resize.get_transform(frame), resize.get_transform(frame))]
    assert sizes == [(1392, 2532), (1654, 3009)]
