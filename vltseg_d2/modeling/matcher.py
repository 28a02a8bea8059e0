"""Hungarian matching of queries to ground-truth masks with point-sampled costs (Mask2Former)."""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.projects.point_rend.point_features import point_sample
from scipy.optimize import linear_sum_assignment
from torch import nn

from .losses import pairwise_dice, pairwise_sigmoid_ce

Indices = List[Tuple[torch.Tensor, torch.Tensor]]


class HungarianMatcher(nn.Module):
    """Cost = cost_class * (-p(class)) + cost_mask * BCE + cost_dice * dice, on ``num_points``
    points drawn uniformly (the same points for every query and target of an image, new points
    for every image and every prediction layer), as Mask2Former's matcher computes it.

    All layers and images are costed in batched tensor operations and the cost matrices reach the
    host in one transfer, where the reference loops over images with one transfer each (a host
    synchronisation per image and layer on a GPU). The points are drawn with one
    ``torch.rand(layers, images, num_points, 2)``.
    """

    def __init__(
        self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0, num_points: int = 12544
    ):
        super().__init__()
        self.cost_class, self.cost_mask, self.cost_dice, self.num_points = cost_class, cost_mask, cost_dice, num_points

    @torch.no_grad()
    def forward(self, outputs: Dict[str, torch.Tensor], targets: Sequence[dict]) -> Indices:
        """Per image, (query indices, target indices) as int64 tensors."""
        return self.match_layers([outputs], targets)[0]

    @torch.no_grad()
    def match_layers(
        self, layers: Sequence[Dict[str, torch.Tensor]], targets: Sequence[dict], masks: Optional[torch.Tensor] = None
    ) -> List[Indices]:
        """:meth:`forward` for every prediction layer (``pred_logits`` B x Q x K+1, ``pred_masks``
        B x Q x H x W; targets' ``masks`` M x H x W at the same size) at once. ``masks``: the
        targets' masks concatenated as (T, 1, H, W) float, when the caller has them already."""
        device = layers[0]["pred_masks"].device
        coords = torch.rand(len(layers), len(targets), self.num_points, 2, device=device)
        costs = self.costs(layers, targets, coords, masks).cpu().numpy()  # the one host transfer
        counts = [len(t["labels"]) for t in targets]
        matched = []
        for layer_costs in costs:
            indices = []
            for cost, m in zip(layer_costs, counts):
                cost = cost[:, :m]
                if not np.isfinite(cost).all():  # scipy would fail with "invalid numeric entries"
                    raise FloatingPointError("the matching cost is not finite: the model predicts NaN or inf")
                rows, cols = linear_sum_assignment(cost)
                indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
            matched.append(indices)
        return matched

    def costs(self, layers, targets, coords: torch.Tensor, masks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(L, B, Q, M_max) cost matrices for points ``coords`` (L, B, P, 2) in [0, 1] (x, y);
        columns past an image's own targets are padding."""
        device = coords.device
        num_layers, batch, points = coords.shape[:3]
        counts = [len(t["labels"]) for t in targets]
        width = max(counts + [1])
        # every target's points for every layer in one sampling: target t of image b sees coords[:, b]
        image_of = torch.cat([torch.full((m,), b, dtype=torch.int64) for b, m in enumerate(counts)]).to(device)
        if masks is None:
            masks = torch.cat([t["masks"] for t in targets])[:, None].float()
        grid = coords[:, image_of].transpose(0, 1).reshape(len(image_of), num_layers * points, 2)
        sampled = point_sample(masks, grid, align_corners=False).view(-1, num_layers, points)
        tgt = coords.new_zeros((num_layers, batch, width, points))
        slot = torch.cat([torch.arange(m) for m in counts]).to(device)
        tgt[:, image_of, slot] = sampled.transpose(0, 1)
        labels = coords.new_zeros((batch, width), dtype=torch.int64)
        labels[image_of, slot] = torch.cat([t["labels"] for t in targets]).to(device)

        costs = []
        for layer, layer_coords, layer_tgt in zip(layers, coords, tgt):
            prob = layer["pred_logits"].float().softmax(-1)
            cost_class = -prob.gather(2, labels[:, None].expand(-1, prob.shape[1], -1))
            pred = point_sample(layer["pred_masks"].float(), layer_coords, align_corners=False)
            costs.append(
                self.cost_mask * pairwise_sigmoid_ce(pred, layer_tgt)
                + self.cost_class * cost_class
                + self.cost_dice * pairwise_dice(pred, layer_tgt)
            )
        return torch.stack(costs)


class FixedMatcher(nn.Module):
    """tqdm's fixed matching (its ``IdentityAssigner``): query k predicts class k. With Q queries
    for K classes (Q a multiple of K), the target of class c goes to queries c, c + K, c + 2K, ...;
    queries of absent classes learn "no object". No costs are computed and nothing is drawn, so
    the random stream differs from Hungarian matching's. Pairs come in the target order, then
    the next block of K queries, as the reference concatenates them."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    @torch.no_grad()
    def forward(self, outputs: Dict[str, torch.Tensor], targets: Sequence[dict]) -> Indices:
        return self.match_layers([outputs], targets)[0]

    @torch.no_grad()
    def match_layers(self, layers, targets, masks=None) -> List[Indices]:
        queries = layers[0]["pred_logits"].shape[1]
        if queries % self.num_classes:
            raise ValueError(f"fixed matching needs a multiple of {self.num_classes} queries, not {queries}")
        indices = []
        for t in targets:
            labels = t["labels"].detach().cpu().long()
            blocks = range(queries // self.num_classes)
            rows = torch.cat([labels + b * self.num_classes for b in blocks])
            cols = torch.arange(len(labels)).repeat(len(blocks))
            indices.append((rows, cols))
        return [indices] * len(layers)
