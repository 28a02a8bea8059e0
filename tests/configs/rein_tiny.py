"""The tiny Rein model of tests/tiny_models.py as a config file (for tools that take --config-file)."""

from tiny_models import tiny_model_cfg

model = tiny_model_cfg()
