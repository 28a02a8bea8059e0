"""The text side of tqdm: CLIP's text tower with learned context, the context decoder, the regularisers."""
