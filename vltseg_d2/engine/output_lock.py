"""One training per output folder.

Two trainings in one ``train.output_dir`` interleave ``metrics.json`` and overwrite each other's
checkpoints. The first takes an exclusive ``flock`` on ``<output_dir>/.train.lock`` and holds it
while it lives; the kernel releases it when the process ends in any way (SIGKILL, a crash, a
node reboot), so a crashed run never leaves a stale lock behind, unlike a lock file that is only
created and deleted.
"""

import fcntl
import os
import socket

from ..config import ConfigError

LOCK_NAME = ".train.lock"
_held = []  # the open lock files of this process: closing one releases its lock


def lock_output_dir(folder: str):
    """Hold the training lock of ``folder`` (created if needed) for the life of this process."""
    try:
        os.makedirs(folder, exist_ok=True)
        handle = open(os.path.join(folder, LOCK_NAME), "a+")
    except OSError as e:
        raise ConfigError(
            f"train.output_dir={folder} cannot be written ({e.strerror}): choose another folder"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"train.output_dir={folder} is in use by another training ({holder}); wait for it to end "
            "(--resume then continues it) or set another train.output_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _held.append(handle)
    return handle
