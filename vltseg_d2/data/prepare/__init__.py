"""Converters from each dataset's download format to Cityscapes train-id label PNGs.

The command-line entries are ``datasets/prepare_<name>.py``; the logic lives here so it can be
imported and tested."""
