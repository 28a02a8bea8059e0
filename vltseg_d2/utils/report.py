"""The end of a measuring tool's run: a table on the console and the figures as JSON."""

import json

from tabulate import tabulate

from .atomic import write_text_atomic


def report(rows, headers, result: dict, output=None) -> dict:
    """Print ``rows`` as a table; write ``result`` as JSON to ``output`` (atomically) when given."""
    print(tabulate(rows, headers=headers, tablefmt="github"))
    if output:
        write_text_atomic(output, json.dumps(result, indent=2))
        print(f"wrote {output}")
    return result
