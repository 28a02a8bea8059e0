"""Install detectron2 offline from PyPI, without its compiled ``_C`` extension.

detectron2 is not published on PyPI. The ``sal-detectron2`` wheel carries detectron2 (0.7.x)
but is tagged for CPython 3.10 and ships a ``_C`` extension built for that interpreter, plus
an unrelated top-level ``tools`` package. Its pure-Python code runs on newer Pythons and
semantic segmentation needs none of the compiled ops, so we repackage it as a pure-Python
wheel holding only ``detectron2/`` and let pip install that with its dependencies.
No library does this repackaging, hence this script.

    python tools/install_detectron2.py          # idempotent: a no-op when already installed
"""

import argparse
import base64
import hashlib
import importlib.metadata
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DIST, VERSION = "sal-detectron2", "0.7.2"
# sha256 of sal_detectron2-0.7.2-cp310-none-any.whl as PyPI serves it: a changed file is refused
WHEEL_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack_pure_python(src_wheel: Path, out_dir: Path) -> Path:
    """Write a py3-none-any wheel with ``detectron2/`` (minus ``_C``) and its metadata."""
    dist_info = f"sal_detectron2-{VERSION}.dist-info"
    out = out_dir / f"sal_detectron2-{VERSION}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(src_wheel) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            name = info.filename
            keep_code = name.startswith("detectron2/") and not Path(name).name.startswith("_C.")
            keep_meta = name in (f"{dist_info}/METADATA", f"{dist_info}/LICENSE")
            if not (keep_code or keep_meta) or "__pycache__" in name:
                continue
            data = zin.read(name)
            if name.endswith("/METADATA"):
                # The wheel pins numpy<2 for its 3.10 build; detectron2's Python code runs on
                # numpy 2, which torch 2.14 and current OpenCV wheels want.
                data = data.replace(b"Requires-Dist: numpy<2", b"Requires-Dist: numpy")
            zout.writestr(name, data)
            records.append(_record_line(name, data))
        extras = {
            f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: vltseg_d2\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
            f"{dist_info}/top_level.txt": b"detectron2\n",
        }
        for name, data in extras.items():
            zout.writestr(name, data)
            records.append(_record_line(name, data))
        records.append(f"{dist_info}/RECORD,,")
        zout.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return out


def installed_version(dist: str = DIST):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def verify(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(
            f"error: {wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}; "
            "refusing to install a wheel that differs from the one this script was written for"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="reinstall even if already installed")
    args = parser.parse_args(argv)
    if installed_version() == VERSION and not args.force:
        print(f"detectron2 ({DIST}=={VERSION}, pure Python) already installed")
        return
    official = installed_version("detectron2")
    if official and not args.force:  # the README's git install: keep it (it has the CUDA ops)
        print(f"official detectron2 {official} already installed; leaving it (use --force to replace it)")
        return
    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.check_call(
            pip
            + [
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.10",
                "-d",
                str(tmp),
                f"{DIST}=={VERSION}",
            ]
        )
        (src,) = tmp.glob("sal_detectron2-*.whl")
        verify(src)
        wheel = repack_pure_python(src, tmp)
        subprocess.check_call(pip + ["install", "-q", str(wheel)])
    print(f"installed detectron2 from {DIST}=={VERSION} (pure Python, no _C extension)")


if __name__ == "__main__":
    main()
