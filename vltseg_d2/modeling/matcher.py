"""Hungarian matching of queries to ground-truth masks with point-sampled costs (Mask2Former)."""

import numpy as np
import torch
from detectron2.projects.point_rend.point_features import point_sample
from scipy.optimize import linear_sum_assignment
from torch import nn

from .losses import pairwise_dice, pairwise_sigmoid_ce


class HungarianMatcher(nn.Module):
    """Cost = cost_class * (-p(class)) + cost_mask * BCE + cost_dice * dice, on ``num_points``
    points drawn uniformly (the same points for every query and target of an image)."""

    def __init__(
        self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0, num_points: int = 12544
    ):
        super().__init__()
        self.cost_class, self.cost_mask, self.cost_dice, self.num_points = cost_class, cost_mask, cost_dice, num_points

    @torch.no_grad()
    def forward(self, outputs, targets):
        """Returns, per image, (query indices, target indices) as int64 tensors."""
        indices = []
        for b, target in enumerate(targets):
            prob = outputs["pred_logits"][b].float().softmax(-1)
            cost_class = -prob[:, target["labels"]]
            pred = outputs["pred_masks"][b][:, None].float()
            tgt = target["masks"][:, None].to(pred)
            coords = torch.rand(1, self.num_points, 2, device=pred.device)
            tgt = point_sample(tgt, coords.repeat(tgt.shape[0], 1, 1), align_corners=False).squeeze(1)
            pred = point_sample(pred, coords.repeat(pred.shape[0], 1, 1), align_corners=False).squeeze(1)
            cost = (
                self.cost_mask * pairwise_sigmoid_ce(pred, tgt)
                + self.cost_class * cost_class
                + self.cost_dice * pairwise_dice(pred, tgt)
            )
            cost = cost.cpu().numpy()
            if not np.isfinite(cost).all():  # scipy would fail with "invalid numeric entries"
                raise FloatingPointError("the matching cost is not finite: the model predicts NaN or inf")
            rows, cols = linear_sum_assignment(cost)
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices
