"""Loaded only into the service processes the share-error test starts (PYTHONPATH):
a wrapper the test controls, standing in for an SMB/NFS share after a server restart.

Opening a file whose name starts with EIO_ or ESTALE_ for reading fails with that
errno as many times as the number in $PSDWATCH_FAULTS_DIR/<name> says, then works.
Opening a file whose name starts with SWAP_ for reading, while
$PSDWATCH_FAULTS_DIR/<name>.next exists, opens it and then renames that file over
it: a copy tool replacing the file while the service reads it (the open handle
keeps the old bytes, every later open gets the new ones).
"""

import builtins
import errno
import os

_open = builtins.open
_DIR = os.environ.get("PSDWATCH_FAULTS_DIR")


def _faulty_open(file, mode="r", *args, **kwargs):
    name = os.path.basename(os.fspath(file)) if isinstance(file, (str, bytes, os.PathLike)) else ""
    if _DIR and "r" in mode and isinstance(name, str) and name.startswith(("EIO_", "ESTALE_")):
        counter = os.path.join(_DIR, name)
        left = int(_open(counter).read() or 0) if os.path.exists(counter) else 0
        if left > 0:
            with _open(counter, "w") as out:
                out.write(str(left - 1))
            code = errno.EIO if name.startswith("EIO_") else errno.ESTALE
            raise OSError(code, os.strerror(code), os.fspath(file))
    handle = _open(file, mode, *args, **kwargs)
    if _DIR and "r" in mode and isinstance(name, str) and name.startswith("SWAP_"):
        replacement = os.path.join(_DIR, name + ".next")
        if os.path.exists(replacement):
            os.replace(replacement, os.fspath(file))
    return handle


builtins.open = _faulty_open
