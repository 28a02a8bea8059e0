""" " (did you mean a, b?)" for a name that is not among the known ones."""

import difflib


def did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, [str(k) for k in known], n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
