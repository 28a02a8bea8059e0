"""Class-name embeddings from CLIP's text tower with learned context (tqdm's CoOp-style prompts).

The tower is ``open_clip``'s ``TextTransformer`` (EVA02-CLIP-L-14-336's text configuration:
width 768, 12 layers, 12 heads, 768 outputs, causal mask) at tqdm's context length of 13 tokens,
frozen; its tokenizer is open_clip's CLIP BPE tokenizer. Conventions of tqdm's code
(``models/backbones/eva_clip/transformer.py`` ``TextTransformer.forward`` with ``context``, and
``models/segmentors/tqdm_eva_clip.py``):

- each class name is tokenized alone at ``name_length`` (5) tokens: start, the name's tokens,
  end, padding; the ``context_length - name_length`` (8) learned context vectors are inserted
  right after the start token, so the sequence is [start, c_1 .. c_8, name, end, padding];
- the output is taken at the end token (the largest token id, shifted by the 8 context vectors),
  after the final LayerNorm, times ``text_projection``;
- the pretrained positional embedding (77 positions) is cut to its first 13, as EVA-CLIP's
  loader does when the tower is built shorter.
"""

from typing import Dict, List, Sequence, Tuple

import open_clip
import torch
from open_clip.transformer import TextTransformer
from torch import nn

from ...utils.safe_load import load_state_dict
from ...utils.tensor_fit import misfits

# EVA02-CLIP-L-14-336 (open_clip's model config) at tqdm's context length
EVA02_L_TEXT = dict(context_length=13, vocab_size=49408, width=768, heads=12, layers=12, output_dim=768)


class ClassNameTooLong(ValueError):
    pass


def tokenize_names(class_names: Sequence[str], name_length: int) -> torch.Tensor:
    """(K, name_length) token ids (on the CPU, also while a model is built on the meta device); a
    name that does not fit is an error naming it."""
    with torch.device("cpu"):
        tokens = open_clip.tokenize(list(class_names), context_length=name_length)
        full = (open_clip.tokenize(list(class_names), context_length=77) != 0).sum(dim=1).tolist()  # start, end
    for name, n in zip(class_names, full):
        if n > name_length:
            raise ClassNameTooLong(
                f"class name {name!r} is {n - 2} tokens; at most {name_length - 2} fit the tower's "
                f"{name_length} name tokens: shorten it or raise model.text.name_length (and context_length)"
            )
    return tokens


class PromptedTextEncoder(nn.Module):
    """Args:
    class_names: one name per class, in train-id order (configuration: renaming or reordering
        them renames or reorders the queries).
    name_length: tokens per class name, start and end included (tqdm: 5).
    tower: ``open_clip.transformer.TextTransformer`` keyword arguments (default: EVA02-CLIP-L's).
    """

    def __init__(self, class_names: Sequence[str], name_length: int = 5, tower: Dict = None):
        super().__init__()
        cfg = dict(EVA02_L_TEXT, **(tower or {}))
        self.class_names = list(class_names)
        self.tower = TextTransformer(**cfg).requires_grad_(False)
        self.context_length, self.name_length = cfg["context_length"], name_length
        if name_length >= self.context_length:
            raise ValueError(f"name_length {name_length} leaves no room for context in {self.context_length} tokens")
        self.register_buffer("name_tokens", tokenize_names(self.class_names, name_length), persistent=False)
        # tqdm draws the contexts with randn and then re-draws them with trunc_normal_ (std 1, cut at +-2)
        self.contexts = nn.Parameter(torch.empty(1, self.context_length - name_length, cfg["width"]))
        nn.init.trunc_normal_(self.contexts)
        self._templates = None  # (key of the tower's weights, template embeddings): see template_embeddings

    @property
    def output_dim(self) -> int:
        return self.tower.text_projection.shape[1]

    def encode(self, tokens: torch.Tensor, contexts: torch.Tensor = None) -> torch.Tensor:
        """(K, output_dim) embeddings of ``tokens`` (K, n); with ``contexts`` (1, m, width) inserted
        after the start token (then n + m must be the tower's context length)."""
        tower = self.tower
        x = tower.token_embedding(tokens)
        end = tokens.argmax(dim=-1)
        if contexts is not None:
            ctx = contexts.to(x.dtype).expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :1], ctx, x[:, 1:]], dim=1)
            end = end + contexts.shape[1]
        x = x + tower.positional_embedding[: x.shape[1]].to(x.dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask[: x.shape[1], : x.shape[1]])
        x = tower.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), end] @ tower.text_projection

    def forward(self) -> torch.Tensor:
        """(K, output_dim): every class name with the learned context."""
        return self.encode(self.name_tokens, self.contexts)

    @torch.no_grad()
    def template_embeddings(self, template: str = "a clean origami of a {}") -> torch.Tensor:
        """(K, output_dim) L2-normalised embeddings of ``template`` per class, no learned context:
        the targets of tqdm's language regulariser. The tower is frozen, so they are computed once
        (as tqdm does at construction) and again only when its weights change (a loaded file)."""
        weight = self.tower.token_embedding.weight
        key = (template, weight.device, weight.data_ptr(), weight._version)
        if self._templates is None or self._templates[0] != key:
            sentences = [template.format(c) for c in self.class_names]
            tokens = open_clip.tokenize(sentences, context_length=self.context_length).to(weight.device)
            self._templates = (key, nn.functional.normalize(self.encode(tokens), dim=-1))
        return self._templates[1]


def load_text_tower(encoder: PromptedTextEncoder, path, prefix: str = "text.") -> Tuple[List[str], List[str]]:
    """Load the text tower of an EVA-CLIP / open_clip file (``text.*`` in
    ``EVA02_CLIP_L_336_psz14_s6B.pt``), read tensors-only. Returns (loaded, dropped-with-reasons);
    a missing or misfit tensor is a ``ValueError`` naming it."""
    state = load_state_dict(path)
    text = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    dropped = [f"{k}: the image tower's or the contrastive head's" for k in state if not k.startswith(prefix)]
    pos = text.get("positional_embedding")
    if pos is not None and pos.shape[0] > encoder.context_length:  # as EVA-CLIP's loader: the first 13 positions
        text["positional_embedding"] = pos[: encoder.context_length]
    own = encoder.tower.state_dict()
    missing = sorted(set(own) - set(text))
    if missing:
        raise ValueError(f"{path}: no text tower weights {prefix}{missing[0]} ({len(missing)} missing)")
    extra = sorted(set(text) - set(own))
    bad = misfits(own, text, source=str(path))
    if bad:
        raise ValueError(f"{path}: text tower weights of another shape or kind: {bad[0]}")
    encoder.tower.load_state_dict({k: text[k] for k in own})
    dropped += [f"{prefix}{k}: not part of the text tower" for k in extra]
    return sorted(own), dropped
