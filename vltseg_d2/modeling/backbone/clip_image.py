"""tqdm's EVA02-CLIP image tower: four feature levels through a BEiT-style FPN, plus CLIP's
global and dense embeddings (``models/backbones/eva_clip/eva_vit_model.py``, ``extract_feats``).

Conventions of tqdm's code, followed here:
- patch 14 on a 512 crop: the patch convolution's stride drops the last 512 - 36 * 14 = 8 rows
  and columns (a 36 x 36 grid), no padding; here the input is cropped to the grid, which is the
  same computation;
- the blocks' outputs after blocks 7, 11, 15, 23 (0-based) go through ``fpn1`` (2x2 transposed
  conv, BatchNorm, GELU, 2x2 transposed conv: x4), ``fpn2`` (one transposed conv: x2), ``fpn3``
  (identity) and ``fpn4`` (2x2 max pool: x0.5), newly initialised (not in the CLIP file); tqdm
  builds the BatchNorm as SyncBatchNorm, which is BatchNorm on one process (convert with
  ``nn.SyncBatchNorm.convert_sync_batchnorm`` for several);
- after the last block, the final LayerNorm and CLIP's projection head (1024 -> 768) are applied
  to every token: the class token is the global embedding (B, 1, 768), the patch tokens the dense
  embeddings (B, 768, 36, 36).

The tower is timm's ``Eva`` (EVA02-CLIP-L/14-336: rotary embeddings, SwiGLU), fully fine-tuned;
:meth:`snapshot_initial` keeps a frozen copy of it for tqdm's vision regulariser.
"""

import copy
from typing import Optional, Sequence

import timm
import torch
from detectron2.modeling import Backbone, ShapeSpec
from torch import nn

from .weights import load_vit_weights


class ClipImageTower(Backbone):
    """Args:
    model_name: a timm EVA02 CLIP vision model (``eva02_large_patch14_clip_336``).
    model_kwargs: extra timm arguments (a tiny model for tests: ``embed_dim``, ``depth`` ...).
    img_size: the crop the position grid is stored for (512: 36 x 36 cells).
    clip_dim: width of CLIP's projection head (768 for EVA02-CLIP-L).
    out_indices: blocks whose outputs form res2..res5.
    pretrained: the original CLIP file (``EVA02_CLIP_L_336_psz14_s6B.pt``) or a hub id.
    keep_initial: keep the frozen initial copy (tqdm's vision regulariser; its code always does,
        from construction on, so the copy is part of every checkpoint; it doubles the tower's memory).
    """

    def __init__(
        self,
        model_name: str = "eva02_large_patch14_clip_336",
        *,
        model_kwargs: Optional[dict] = None,
        img_size: int = 512,
        clip_dim: int = 768,
        out_indices: Sequence[int] = (7, 11, 15, 23),
        pretrained: Optional[str] = None,
        keep_initial: bool = True,
    ):
        super().__init__()
        kwargs = dict(img_size=img_size, num_classes=clip_dim, dynamic_img_size=True, **(model_kwargs or {}))
        self.vit = timm.create_model(model_name, pretrained=False, **kwargs)
        self.out_indices, self.pretrained = tuple(out_indices), pretrained
        self.patch_size = self.vit.patch_embed.patch_size[0]
        dim = self.embed_dim = self.vit.embed_dim
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, 2, 2), nn.BatchNorm2d(dim), nn.GELU(), nn.ConvTranspose2d(dim, dim, 2, 2)
        )
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, 2))
        self.fpn3, self.fpn4 = nn.Identity(), nn.MaxPool2d(2, 2)
        self.initial: Optional[nn.Module] = None  # the frozen copy, once taken
        self.loaded_from, self.freeze = None, False  # fully fine-tuned: checkpoints hold every weight
        self.keep_initial = keep_initial
        if keep_initial:  # as tqdm: the tower as built (random here; the CLIP weights once loaded)
            self.snapshot_initial()

    def load_pretrained(self, source: Optional[str] = None):
        source = source or self.pretrained
        load_vit_weights(self, source)
        self.loaded_from = source
        if self.keep_initial:
            self.snapshot_initial()

    def snapshot_initial(self):
        """Keep the tower as it is now, frozen, for the vision regulariser (tqdm deep-copies the
        backbone right after loading the CLIP weights; the copy is part of the model's state)."""
        self.initial = copy.deepcopy(self.vit).requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.initial is not None:
            self.initial.eval()  # the reference stays as it was
        return self

    @property
    def size_divisibility(self):
        return 0  # no padding: the patch grid drops the remainder, as tqdm's patch convolution does

    def _tokens(self, vit, images):
        gh, gw = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        x = vit.patch_embed(images[..., : gh * self.patch_size, : gw * self.patch_size])
        x, rope = vit._pos_embed(x)
        return vit.norm_pre(x), rope, (gh, gw)

    def clip_embeddings(self, vit, x, grid):
        """(global (B, 1, clip_dim), dense (B, clip_dim, gh, gw)) from the last block's tokens."""
        x = vit.head(vit.norm(x))
        dense = x[:, vit.num_prefix_tokens :].transpose(1, 2).reshape(x.shape[0], -1, *grid)
        return x[:, :1], dense

    def forward(self, images: torch.Tensor):
        x, rope, grid = self._tokens(self.vit, images)
        levels = []
        for i, block in enumerate(self.vit.blocks):
            x = block(x, rope=rope)
            if i in self.out_indices:
                levels.append(x[:, self.vit.num_prefix_tokens :].transpose(1, 2).reshape(x.shape[0], -1, *grid))
        names = ("res2", "res3", "res4", "res5")
        out = {n: fpn(level) for n, fpn, level in zip(names, (self.fpn1, self.fpn2, self.fpn3, self.fpn4), levels)}
        out["clip_global"], out["clip_dense"] = self.clip_embeddings(self.vit, x, grid)
        return out

    @torch.no_grad()
    def initial_global(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen initial tower's global embedding (B, 1, clip_dim)."""
        if self.initial is None:
            raise RuntimeError("no initial tower (keep_initial=False): the vision regulariser needs it")
        x, rope, grid = self._tokens(self.initial, images)
        for block in self.initial.blocks:
            x = block(x, rope=rope)
        return self.clip_embeddings(self.initial, x, grid)[0]

    def output_shape(self):
        # the levels' strides are patch / 4, / 2, / 1, * 2 (3.5 ... 28 for patch 14), named as detectron2's
        return {f"res{k}": ShapeSpec(channels=self.embed_dim, stride=2**k) for k in (2, 3, 4, 5)}
