"""Reading the key/shape fixtures under tests/fixtures/."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def read_key_shapes(name: str) -> dict:
    """``{key: shape}`` from a fixture file of ``key (d0, d1, ...)`` lines."""
    out = {}
    for line in (FIXTURES / name).read_text().splitlines():
        key, shape = line.split(" ", 1)
        out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out
