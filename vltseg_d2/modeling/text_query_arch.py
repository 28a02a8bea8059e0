"""tqdm (Pak et al., ECCV 2024): Mask2Former whose object queries are the class names' text
embeddings, one query per class with fixed matching, on EVA02-CLIP's image tower.

Per image (``models/segmentors/tqdm_eva_clip.py``, ``after_extract_feat`` and ``forward_train``):
1. the image tower gives four levels and CLIP's global (B, 1, C) and dense (B, C, h, w) embeddings;
2. the class names with learned context go through the frozen text tower (K, C), and are refined
   against the visual context (global + dense tokens) by the context decoder:
   ``T = T + gamma * ContextDecoder(T, visual)``;
3. the pixel-text score map is the cosine similarity of the dense embeddings and ``T``;
4. the pixel decoder attends from pixels to ``T``; the transformer decoder's queries are ``T``
   projected (query k is class k; the criterion's matcher is :class:`FixedMatcher`).
Training adds the three regularisers of :mod:`vltseg_d2.modeling.text.regularisers` to
Mask2Former's losses, each weight 1: ``loss_reg_language``, ``loss_reg_vision`` (global embedding
against the frozen initial tower's) and ``loss_score_map`` (the score map / 0.07 against the label).
"""

from typing import Sequence

import torch
import torch.nn.functional as F

from .inference import semantic_scores
from .meta_arch import MaskFormer
from .text.context_decoder import ContextDecoder, context_gamma
from .text.prompted_text import PromptedTextEncoder, load_text_tower
from .text.regularisers import language_loss, vision_language_loss, vision_loss


class TextQueryMaskFormer(MaskFormer):
    """Args (besides :class:`MaskFormer`'s; the backbone is a :class:`ClipImageTower`):
    text_encoder: the class names through CLIP's text tower (:class:`PromptedTextEncoder`).
    context_decoder: the :class:`ContextDecoder`, or None (no refinement).
    regularisers: which of "language", "vision", "score_map" to add in training (tqdm: all).
    template: the language regulariser's sentence per class.
    """

    def __init__(
        self,
        *,
        text_encoder: PromptedTextEncoder,
        context_decoder: ContextDecoder = None,
        regularisers: Sequence[str] = ("language", "vision", "score_map"),
        template: str = "a clean origami of a {}",
        **kwargs,
    ):
        super().__init__(**kwargs)
        unknown = set(regularisers) - {"language", "vision", "score_map"}
        if unknown:
            raise ValueError(f"model.regularisers: unknown {sorted(unknown)}; choose from language, vision, score_map")
        self.text_encoder, self.context_decoder = text_encoder, context_decoder
        self.gamma = context_gamma(text_encoder.output_dim) if context_decoder is not None else None
        self.regularisers, self.template = tuple(regularisers), template

    def load_pretrained(self):
        """Both CLIP towers from the one original file (``model.backbone.pretrained``)."""
        self.backbone.load_pretrained()
        load_text_tower(self.text_encoder, self.backbone.pretrained)

    def _text_and_features(self, images):
        feats = self.backbone(images)
        visual_global, dense = feats["clip_global"], feats["clip_dense"]
        text = self.text_encoder()[None].expand(images.shape[0], -1, -1)
        if self.context_decoder is not None:
            visual = torch.cat([visual_global, dense.flatten(2).transpose(1, 2)], dim=1)
            text = text + self.gamma * self.context_decoder(text, visual)
        score_map = torch.einsum("bchw,bkc->bkhw", F.normalize(dense, dim=1), F.normalize(text, dim=-1))
        return feats, text, score_map

    def scores_from_outputs(self, out: dict, size) -> torch.Tensor:
        """tqdm's order: ``softmax(class) x sigmoid(mask)`` at the mask logits' resolution (1/4), then
        bilinear to ``size`` (``tqdmHead.forward_test``, then ``encode_decode``'s resize). Mask2Former
        upsamples the mask logits before the sigmoid; on a tiny model the two orders differ by 0.02 in
        score (tools/compare_tqdm_reference.py)."""
        scores = semantic_scores(out["pred_logits"], out["pred_masks"])
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)

    def _head_outputs(self, images: torch.Tensor):
        feats, text, _ = self._text_and_features(images)
        return self.sem_seg_head(feats, queries=text, texts=text)

    def forward(self, batched_inputs):
        if not self.training:
            return self.inference(batched_inputs)
        images = self._pad([self._pad_to_label(self._normalize(x["image"]), x["instances"]) for x in batched_inputs])
        feats, text, score_map = self._text_and_features(images.tensor)
        outputs = self.sem_seg_head(feats, queries=text, texts=text)
        targets = self._targets([x["instances"] for x in batched_inputs], images.tensor.shape[-2:])
        # the frozen copy's forward (no autograd) runs at the training precision: in a bf16 run 2.6x
        # faster than in float32 (EVA02-L at 512 on the CPU: 1.4 vs 3.6 s, against 12.4 s for the
        # tower's float32 forward and backward); float32 recipes keep it float32, as the original
        frozen = self.backbone.initial_global(images.tensor) if "vision" in self.regularisers else None
        with torch.autocast(self.device.type, enabled=False):  # matching, losses and regularisers in float32
            losses = self.criterion(outputs, targets)
            if "language" in self.regularisers:
                losses["loss_reg_language"] = language_loss(text.float(), self.text_encoder.template_embeddings())
            if frozen is not None:
                losses["loss_reg_vision"] = vision_loss(feats["clip_global"].float(), frozen.float())
            if "score_map" in self.regularisers:
                labels = self._labels(batched_inputs, images.tensor.shape[-2:])
                losses["loss_score_map"] = vision_language_loss(score_map.float(), labels)
        return losses

    def _labels(self, batched_inputs, padded_size):
        """Each image's train ids padded with 255 to the batch (as mmseg pads ``gt_semantic_seg``)."""
        labels = torch.full((len(batched_inputs), *padded_size), 255, dtype=torch.long, device=self.device)
        for i, x in enumerate(batched_inputs):
            sem = x["sem_seg"].to(self.device)
            labels[i, : sem.shape[0], : sem.shape[1]] = sem
        return labels
