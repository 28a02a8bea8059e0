"""Mask2Former's set criterion: class cross-entropy with a down-weighted "no object" class and
point-sampled mask BCE and dice on matched pairs, for the final and every auxiliary prediction."""

import torch
import torch.nn.functional as F
from detectron2.projects.point_rend.point_features import point_sample
from detectron2.utils import comm
from torch import nn

from .losses import dice_loss, sigmoid_ce_loss
from .matcher import HungarianMatcher


def uncertain_point_coords(logits: torch.Tensor, num_points: int, oversample: float, importance: float):
    """Mask2Former's training points per mask logit map (K, 1, H, W) -> (K, num_points, 2) in [0, 1]:
    ``int(num_points * oversample)`` uniform points, the ``int(importance * num_points)`` most
    uncertain of them (smallest |logit| at the point), then uniform points for the rest. This is
    detectron2's ``get_uncertain_point_coords_with_randomness`` with ``-|logit|`` as uncertainty, with
    the same random draws in the same order, but its top-k is unsorted and its gather one op: the
    points are the same set in another order (losses average over points); the top-k runs 2x faster
    on the CPU."""
    k = logits.shape[0]
    coords = torch.rand(k, int(num_points * oversample), 2, device=logits.device)
    uncertainty = -point_sample(logits, coords, align_corners=False)[:, 0].abs()
    num_uncertain = int(importance * num_points)
    idx = uncertainty.topk(num_uncertain, dim=1, sorted=False).indices
    uncertain = coords.gather(1, idx[..., None].expand(-1, -1, 2))
    return torch.cat([uncertain, torch.rand(k, num_points - num_uncertain, 2, device=logits.device)], 1)


def sample_matched_targets(masks: torch.Tensor, matched: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``point_sample(masks[matched], coords)`` (K, P) without gathering the full-size masks of the
    K pairs: matching is one-to-one, so each target mask is sampled at the points of its own pair
    (unmatched targets at a dummy point) and the samples are reordered; bilinear sampling is per
    output point, so the values are the same bits."""
    grid = coords.new_zeros((masks.shape[0],) + tuple(coords.shape[1:]))
    grid[matched] = coords
    return point_sample(masks, grid, align_corners=False).squeeze(1)[matched]


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
        aux = outputs.get("aux_outputs", [])
        masks = torch.cat([t["masks"] for t in targets])[:, None].float()  # every target once, (T, 1, H, W)
        matched = self.matcher.match_layers([outputs] + list(aux), targets, masks)  # one host transfer
        first = torch.as_tensor([0] + [len(t["labels"]) for t in targets]).cumsum(0)
        losses = self._losses(outputs, targets, num_masks, matched[0], masks, first)
        for i, (layer, indices) in enumerate(zip(aux, matched[1:])):
            layer_losses = self._losses(layer, targets, num_masks, indices, masks, first)
            losses.update({f"{k}_{i}": v for k, v in layer_losses.items()})
        return losses

    def _losses(self, outputs, targets, num_masks, indices, masks, first):
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
        matched_targets = torch.cat([first[b] + j for b, (_, j) in enumerate(indices)]).to(masks.device)
        with torch.no_grad():
            coords = uncertain_point_coords(
                src_masks, self.num_points, self.oversample_ratio, self.importance_sample_ratio
            )
            labels = sample_matched_targets(masks, matched_targets, coords)
        point_logits = point_sample(src_masks, coords, align_corners=False).squeeze(1)
        return {
            "loss_ce": loss_ce * self.weights["loss_ce"],
            "loss_mask": sigmoid_ce_loss(point_logits, labels, num_masks) * self.weights["loss_mask"],
            "loss_dice": dice_loss(point_logits, labels, num_masks) * self.weights["loss_dice"],
        }
