"""Plain text in log files.

detectron2's ``default_setup`` logs the config highlighted for a terminal (pygments' ANSI colour
codes), and its log file handler writes the same text, so ``log.txt`` fills with escape codes.
``setup_logger`` is memoised on its arguments: calling it first, with the arguments
``default_setup`` uses, returns the logger ``default_setup`` will get, and a filter on its file
handlers removes the codes there (the console handler, called first, keeps the colours).
"""

import logging
import re
import sys

from detectron2.utils.logger import setup_logger

ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StripAnsi(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        if "\x1b[" in message:
            record.msg, record.args = ANSI_CODE.sub("", message), None
        return True


def plain_log_files(output_dir: str, rank: int):
    """Before ``default_setup(cfg, args)``: its detectron2 and fvcore loggers write plain text."""
    for logger in (
        setup_logger(output_dir, distributed_rank=rank, name="fvcore"),
        setup_logger(output_dir, distributed_rank=rank),
    ):
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if stream not in (sys.stdout, sys.stderr) and not any(isinstance(f, StripAnsi) for f in handler.filters):
                handler.addFilter(StripAnsi())
