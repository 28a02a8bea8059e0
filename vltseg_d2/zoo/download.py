"""Resumable downloads and sha256 records for the zoo's files.

Written by hand on ``urllib`` because the downloaders at hand do not resume: ``torch.hub``'s
``download_url_to_file`` restarts from zero, and ``huggingface_hub`` only fetches from the Hub
(the DINOv2 and GitHub release files are not there). A download goes to ``<file>.part``; an
interrupted one (network, Ctrl-C, a killed job) is continued from its last byte with an HTTP
Range request by running the same command again, and only a complete file is renamed into place.

After the first complete download the file's sha256 is recorded beside it as ``<file>.sha256``
(``sha256sum`` format, so ``sha256sum -c`` checks it too), and every later use checks it.
"""

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from tqdm import tqdm

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download or check that failed; the message names the file or URL and what to do."""


def sha256_of(path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    path = Path(path)
    with (
        open(path, "rb") as f,
        tqdm(
            total=path.stat().st_size, unit="B", unit_scale=True, desc=f"sha256 {path.name}", disable=not progress
        ) as bar,
    ):
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def record_path(path) -> Path:
    return Path(str(path) + ".sha256")


def hash_prefix_of(file_name: str) -> Optional[str]:
    """torch.hub's naming convention: ``name-<first 8+ hex digits of the sha256>.ext``."""
    match = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z]+$", file_name)
    return match.group(1) if match else None


def check_or_record_sha256(path, prefix: Optional[str] = None) -> str:
    """Check ``path`` against its recorded sha256 (and a hash prefix its original name carries);
    record it when there is no record yet. Returns the digest; a mismatch is a ``DownloadError``."""
    path, record = Path(path), record_path(path)
    digest = sha256_of(path, progress=path.stat().st_size > 64 * CHUNK)
    if prefix and not digest.startswith(prefix):
        raise DownloadError(
            f"{path}: sha256 {digest[:12]}... does not start with {prefix}, the hash its name carries: "
            "the file is corrupted or not the original; delete it and get it again"
        )
    if record.is_file():
        recorded = (record.read_text().split() or [""])[0]
        if recorded != digest:
            raise DownloadError(
                f"{path}: sha256 {digest} differs from {recorded} recorded at its first download "
                f"({record.name}): the file changed or is corrupted; delete both and get it again"
            )
        return digest
    record.write_text(f"{digest}  {path.name}\n")
    logger.info(f"recorded sha256 {digest} in {record}")
    return digest


def _total_from_content_range(value: Optional[str]) -> Optional[int]:
    match = re.match(r"bytes (?:(\d+)-\d+|\*)/(\d+)", value or "")
    return int(match.group(2)) if match else None


def download(url: str, target, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target``, continuing ``<target>.part`` where a previous try stopped.
    An incomplete transfer leaves the part file and raises a ``DownloadError`` saying so."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "vltseg_d2-zoo"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have and _total_from_content_range(e.headers.get("Content-Range")) == have:
            os.replace(part, target)  # the part was complete: only the rename was missing
            return target
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot connect ({reason}); run the same command again to retry") from None
    with response:
        if have and response.status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
            logger.info(f"resuming {target.name} at {have:,} bytes")
        else:  # a first try, or a server that ignores ranges: from the start
            length = response.headers.get("Content-Length")
            total, mode, have = (int(length) if length else None), "wb", 0
        done = have
        try:
            with (
                open(part, mode) as f,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name) as bar,
            ):
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
        except (http.client.IncompleteRead, OSError) as e:
            raise DownloadError(
                f"{url}: interrupted after {done:,} of {total or '?'} bytes ({type(e).__name__}); "
                f"kept {part}: run the same command again to resume"
            ) from None
    if total is not None and done != total:
        raise DownloadError(
            f"{url}: the connection closed after {done:,} of {total:,} bytes; kept {part}: "
            "run the same command again to resume"
        )
    os.replace(part, target)
    return target
