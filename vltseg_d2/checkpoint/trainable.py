"""Checkpoints that hold only the trainable parameters (e.g. Rein + head, 3% of a ViT-L model).

A full model is assembled from the backbone's original file (loaded at construction through
``model.backbone.pretrained``) plus such a file.
"""
from pathlib import Path

import torch
from torch import nn

from .io import save_atomic


def trainable_state_dict(model: nn.Module) -> dict:
    return {name: p.detach().cpu() for name, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: nn.Module, path) -> Path:
    return save_atomic({"model": trainable_state_dict(model), "trainable_only": True}, path)


def load_trainable(model: nn.Module, path) -> None:
    """Load a trainable-only file; every trainable parameter of ``model`` must be in it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    expected = trainable_state_dict(model)
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - dict(model.named_parameters()).keys())
    wrong = [k for k in expected.keys() & state.keys() if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                         f"wrong shape {wrong[:5]}")
    model.load_state_dict(state, strict=False)
