"""Put the python-backend stub for another Python into a Triton server (run at image build time).

The NGC tritonserver 24.10 image (Triton 2.51) has a stub for its own Python 3.10; the models this
provider generates pin onnxruntime/tokenizers releases that need Python >= 3.11 (the worker's pins,
recorded in each package's requirements.txt). The nvidia-pytriton 0.7.0 wheel, which bundles the
same Triton 2.51, carries stubs for Python 3.8-3.13: this unpacks one, with the wheel's relative
layout (its RPATH is ``$ORIGIN/../../../../nvidia_pytriton.libs``), and links it into the server's
``backends/python``. The test harness runs the very same stub (dev/harness/triton.py).

    python3 triton_stub.py WHEEL UNPACK_DIR BACKEND_DIR 3.11

Standard library only: it runs on the base image's Python before anything is installed.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

STUB = "triton_python_backend_stub"
LIBS = "nvidia_pytriton.libs/"


def install_stub(wheel: Path, unpack_dir: Path, backend_dir: Path, python: str) -> Path:
    """Unpack the stub for `python` (e.g. ``3.11``) and the libraries it links; return the link."""
    member = f"pytriton/tritonserver/python_backend_stubs/{python}/{STUB}"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if member not in names:
            have = sorted(
                {n.split("/")[3] for n in names if "/python_backend_stubs/" in n and n.count("/") > 3}
            )
            raise SystemExit(f"{wheel.name} has no python backend stub for Python {python}; it has {have}")
        # libcudart (the stub's only non-system library) and whatever else the wheel bundles but the
        # 31 MB libpython of its 3.13 stub.
        wanted = [member] + [n for n in names if n.startswith(LIBS) and "libpython" not in n]
        for name in wanted:
            archive.extract(name, unpack_dir)
    stub = unpack_dir / member
    stub.chmod(0o755)
    backend_dir.mkdir(parents=True, exist_ok=True)
    link = backend_dir / STUB
    tmp = backend_dir / f".{STUB}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    # A link, not a copy: $ORIGIN resolves through it to the unpacked tree, where the libraries are.
    tmp.symlink_to(stub.resolve())
    os.replace(tmp, link)
    return link


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, unpack_dir, backend_dir, python = argv
    link = install_stub(Path(wheel), Path(unpack_dir), Path(backend_dir), python)
    print(f"{link} -> {os.readlink(link)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
