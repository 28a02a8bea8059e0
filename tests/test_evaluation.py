"""Per-domain metrics against cityscapesscripts, the cross-domain summary, multi-process gathering."""

import copy
import json

import numpy as np
import pytest
import torch
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from cityscapesscripts.helpers.labels import labels as cs_labels
from images import read_image
from PIL import Image

from vltseg_d2.data.datasets.classes import CLASS_NAMES, TRAIN_ID_TO_LABEL_ID
from vltseg_d2.evaluation import (
    SemSegIoUEvaluator,
    format_cross_domain_table,
    format_per_class_table,
    save_cross_domain,
    summarize_cross_domain,
)


def _random_pairs(tmp_path, n=3, h=40, w=50):
    rng = np.random.default_rng(0)
    records, outputs, gt_ids, pred_ids = [], [], [], []
    to_label_id = np.array([TRAIN_ID_TO_LABEL_ID[i] for i in range(19)])
    for i in range(n):
        gt = rng.integers(0, 19, (h, w))
        gt[rng.random((h, w)) < 0.1] = 255
        logits = torch.randn(19, h, w)
        pred = logits.argmax(0).numpy()
        Image.fromarray(gt.astype(np.uint8)).save(tmp_path / f"gt{i}.png")
        records.append({"file_name": f"img{i}.png", "sem_seg_file_name": str(tmp_path / f"gt{i}.png")})
        outputs.append({"sem_seg": logits})
        gt_label = np.where(gt == 255, 0, to_label_id[np.minimum(gt, 18)])  # 255 -> "unlabeled" (id 0)
        for arr, name, store in (
            (gt_label, f"gt{i}_labelIds.png", gt_ids),
            (to_label_id[pred], f"pred{i}.png", pred_ids),
        ):
            Image.fromarray(arr.astype(np.uint8)).save(tmp_path / name)
            store.append(str(tmp_path / name))
    return records, outputs, gt_ids, pred_ids


def test_matches_official_cityscapes_evaluation(tmp_path, monkeypatch):
    records, outputs, gt_files, pred_files = _random_pairs(tmp_path)
    from detectron2.data import MetadataCatalog

    MetadataCatalog.get("eval_test_random").set(stuff_classes=list(CLASS_NAMES), ignore_label=255)
    ev = SemSegIoUEvaluator("eval_test_random", distributed=False)
    ev.process(records, outputs)
    ours = ev.evaluate()["sem_seg"]

    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    args.evalLabels = [lab.id for lab in cs_labels if lab.id >= 0]
    official = cs_eval.evaluateImgLists(pred_files, gt_files, args)
    for name in CLASS_NAMES:
        assert ours[f"IoU-{name}"] / 100 == pytest.approx(official["classScores"][name], abs=1e-6)
    assert ours["mIoU"] / 100 == pytest.approx(official["averageScoreClasses"], abs=1e-6)


def test_absent_class_counts_as_zero_when_predicted_and_nan_when_not():
    from vltseg_d2.evaluation import iou_metrics

    conf = np.zeros((19, 19), np.int64)
    conf[0, 0], conf[0, 1], conf[2, 2] = 6, 2, 4  # class 1 predicted but absent; others never seen
    res = iou_metrics(conf, CLASS_NAMES)
    assert res["IoU-road"] == pytest.approx(75.0) and res["IoU-sidewalk"] == 0.0 and res["IoU-building"] == 100.0
    assert np.isnan(res["IoU-sky"])
    assert res["mIoU"] == pytest.approx((75 + 0 + 100) / 3)
    assert res["aAcc"] == pytest.approx(100 * 10 / 12)


def test_cross_domain_summary_means_domains_never_pools(tmp_path):
    def metrics(miou):
        return {"sem_seg": {"mIoU": miou, "mAcc": 1.0, "aAcc": 2.0, "IoU-road": miou}}

    summary = summarize_cross_domain(
        {"src_val": metrics(90.0), "a_val": metrics(40.0), "b_val": metrics(60.0)}, in_domain=("src_val",)
    )
    assert summary["mean_mIoU"] == pytest.approx(50.0) and summary["num_target_domains"] == 2
    table = format_cross_domain_table(summary)
    assert "src_val (in-domain)" in table and "50.00" in table
    json_path, md_path = save_cross_domain(summary, tmp_path)
    assert json.loads(json_path.read_text())["mean_mIoU"] == pytest.approx(50.0)
    assert "Per-class IoU" in md_path.read_text() and "road" in md_path.read_text()


def test_per_class_table_has_classes_as_rows_and_the_mean_of_targets_per_class():
    def metrics(road, sky):
        return {"sem_seg": {"mIoU": 1.0, "mAcc": 1.0, "aAcc": 1.0, "IoU-road": road, "IoU-sky": sky}}

    summary = summarize_cross_domain(
        {"src_val": metrics(99.0, 98.0), "a_val": metrics(40.0, 10.0), "b_val": metrics(60.0, float("nan"))},
        in_domain=("src_val",),
    )
    lines = format_per_class_table(summary).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        "class",
        "src_val (in-domain)",
        "a_val",
        "b_val",
        "mean of 2 targets",
    ]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]] for line in lines[2:]}
    assert len(cells) == 19 and list(cells)[0] == "road" and list(cells)[-1] == "bicycle"
    assert cells["road"] == ["99.00", "40.00", "60.00", "50.00"]  # the in-domain column is left out of the mean
    assert cells["sky"] == ["98.00", "10.00", "-", "-"]  # a class one target lacks has no mean
    assert cells["car"] == ["-", "-", "-", "-"]


def _gather_worker(tmp_dir):
    from detectron2.data import MetadataCatalog
    from detectron2.utils import comm

    MetadataCatalog.get("eval_test_dist").set(stuff_classes=list(CLASS_NAMES), ignore_label=255)
    ev = SemSegIoUEvaluator("eval_test_dist")
    rank = comm.get_rank()
    gt = np.full((4, 4), rank, np.int64)  # rank 0 sees road only, rank 1 sidewalk only
    ev.add(gt, gt)
    res = ev.evaluate()
    if comm.is_main_process():
        with open(f"{tmp_dir}/result.json", "w") as f:
            json.dump(res["sem_seg"], f)


def test_results_are_gathered_from_all_ranks(tmp_path):
    from vltseg_d2.engine import launch

    launch(_gather_worker, 2, dist_url="auto", args=(str(tmp_path),))
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["IoU-road"] == 100.0 and res["IoU-sidewalk"] == 100.0 and res["aAcc"] == 100.0


def test_unlabelled_test_splits_get_a_prediction_writer(tmp_path):
    from detectron2.config import LazyConfig

    from vltseg_d2.engine import Trainer

    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    with pytest.raises(ValueError, match="train.write_predictions"):
        Trainer.build_evaluator(cfg, "acdc_test")
    cfg.train.write_predictions = "labelId"
    evaluators = Trainer.build_evaluator(cfg, "acdc_test", output_folder=str(tmp_path))._evaluators
    assert [type(e).__name__ for e in evaluators] == ["PredictionWriter"]
    writer = evaluators[0]
    writer.reset()
    scores = torch.zeros(19, 2, 3)
    scores[0, :, :2], scores[13, :, 2] = 1, 1  # road, road, car
    writer.process([{"file_name": "/x/GOPR0122_frame_000161_rgb_anon.png"}], [{"sem_seg": scores}])
    written = read_image(tmp_path / "acdc_test" / "GOPR0122_frame_000161_rgb_anon.png")
    np.testing.assert_array_equal(written, [[7, 7, 26], [7, 7, 26]])  # Cityscapes label ids


def test_overall_eta_extrapolates_seconds_per_image_over_the_images_left():
    from vltseg_d2.engine.trainer import overall_eta

    assert overall_eta(0.0, 0, 500, 3) == ""  # nothing measured yet
    assert overall_eta(100.0, 200, 500, 3) == "; about 0:02:30 left for all 3 datasets"  # 0.5 s x 300 images
    assert overall_eta(7200.0, 1000, 1500, 5) == "; about 1:00:00 left for all 5 datasets"
    assert overall_eta(10.0, 500, 500, 3) == ""
