"""A pickled object that runs code when unpickled without restrictions (for refusal tests)."""

import os


class RunsCode:
    """Unpickles as ``os.system("touch <marker>")``: the marker's existence proves code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
