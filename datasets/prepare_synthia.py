#!/usr/bin/env python
"""Command-line entry; see vltseg_d2/data/prepare/synthia.py (or run with --help)."""
import sys

from vltseg_d2.data.prepare.synthia import main

if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary.converted + summary.skipped > 0 else 1)
