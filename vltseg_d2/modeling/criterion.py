"""Mask2Former's set criterion: class cross-entropy with a down-weighted "no object" class and
point-sampled mask BCE and dice on matched pairs, for the final and every auxiliary prediction."""

import torch
import torch.nn.functional as F
from detectron2.projects.point_rend.point_features import get_uncertain_point_coords_with_randomness, point_sample
from detectron2.utils import comm
from torch import nn

from .losses import dice_loss, sigmoid_ce_loss
from .matcher import HungarianMatcher


def _uncertainty(logits):
    return -logits.abs()


class SetCriterion(nn.Module):
    """Args:
    num_classes: K; "no object" is class K with weight ``eos_coef``.
    matcher: a :class:`HungarianMatcher`.
    class_weight, mask_weight, dice_weight: 2.0, 5.0, 5.0 in the recipes.
    eos_coef: 0.1.
    num_points, oversample_ratio, importance_sample_ratio: 12544, 3.0, 0.75.
    """

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        eos_coef: float = 0.1,
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
    ):
        super().__init__()
        self.num_classes, self.matcher = num_classes, matcher
        self.weights = {"loss_ce": class_weight, "loss_mask": mask_weight, "loss_dice": dice_weight}
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight, persistent=False)  # derived from eos_coef
        self.num_points = num_points
        self.oversample_ratio, self.importance_sample_ratio = oversample_ratio, importance_sample_ratio

    def forward(self, outputs, targets):
        """Returns the weighted losses: ``loss_ce``, ``loss_mask``, ``loss_dice`` and ``*_<i>`` for the
        auxiliary predictions."""
        num_masks = torch.as_tensor(
            [float(sum(len(t["labels"]) for t in targets))], device=outputs["pred_logits"].device
        )
        if comm.get_world_size() > 1:
            torch.distributed.all_reduce(num_masks)
        num_masks = torch.clamp(num_masks / comm.get_world_size(), min=1).item()
        losses = self._losses(outputs, targets, num_masks)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            losses.update({f"{k}_{i}": v for k, v in self._losses(aux, targets, num_masks).items()})
        return losses

    def _losses(self, outputs, targets, num_masks):
        indices = self.matcher(outputs, targets)
        logits = outputs["pred_logits"].float()
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        src_idx = torch.cat([src for src, _ in indices])
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        target_classes[batch_idx, src_idx] = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)])
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)

        src_masks = outputs["pred_masks"][batch_idx, src_idx][:, None].float()
        if src_masks.shape[0] == 0:  # no labelled pixel in the batch: keep the graph, add nothing
            zero = outputs["pred_masks"].sum() * 0.0
            return {"loss_ce": loss_ce * self.weights["loss_ce"], "loss_mask": zero, "loss_dice": zero}
        tgt_masks = torch.cat([t["masks"][j] for t, (_, j) in zip(targets, indices)])[:, None].to(src_masks)
        with torch.no_grad():
            coords = get_uncertain_point_coords_with_randomness(
                src_masks, _uncertainty, self.num_points, self.oversample_ratio, self.importance_sample_ratio
            )
            labels = point_sample(tgt_masks, coords, align_corners=False).squeeze(1)
        point_logits = point_sample(src_masks, coords, align_corners=False).squeeze(1)
        return {
            "loss_ce": loss_ce * self.weights["loss_ce"],
            "loss_mask": sigmoid_ce_loss(point_logits, labels, num_masks) * self.weights["loss_mask"],
            "loss_dice": dice_loss(point_logits, labels, num_masks) * self.weights["loss_dice"],
        }
