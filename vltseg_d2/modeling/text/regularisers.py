"""tqdm's three regularisers (``models/segmentors/tqdm_eva_clip.py``), as loss functions.

- language: each learned class embedding is classified among the frozen template embeddings
  ("a clean origami of a {class}") by cosine similarity, no temperature; cross-entropy with its
  own class as the target, mean over images and classes;
- vision: mean squared error between the image tower's global embedding and that of a frozen
  copy of the initial tower;
- vision-language: the pixel-text score map divided by tau = 0.07, resized bilinearly to the
  label, cross-entropy with 255 ignored, averaged over all pixels (mmseg 0.x's
  ``avg_non_ignore=False``: ignored pixels count in the denominator), weight 1.
"""

import torch
import torch.nn.functional as F

TAU = 0.07


def language_loss(text_embeddings: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """text_embeddings (B, K, C) learned; templates (K, C) L2-normalised, frozen."""
    scores = torch.einsum("blc,kc->bkl", F.normalize(text_embeddings, dim=-1), templates.detach())
    target = torch.arange(scores.shape[1], device=scores.device).expand(scores.shape[0], -1)
    return F.cross_entropy(scores, target)


def vision_loss(global_feature: torch.Tensor, frozen_global_feature: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(global_feature, frozen_global_feature.detach())


def vision_language_loss(score_map: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """score_map (B, K, h, w) cosine similarities; labels (B, H, W) train ids."""
    logits = F.interpolate(score_map / TAU, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits, labels.long(), ignore_index=ignore_index, reduction="none")
    return per_pixel.mean()
