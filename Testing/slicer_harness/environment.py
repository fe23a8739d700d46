"""Slicer's own Python environment: exactly the packages Slicer 5.12 bundles, plus slicer-core for MRML.

    python Testing/slicer_harness/environment.py .venv-slicer    # make test runs this (idempotent)

The base environment holds the pins of ``slicer-5.12-python.txt`` (installed without their
dependencies, as Slicer's SuperBuild installs them) and ``slicer-core`` with its VTK (also without
dependencies: vtk's wheel asks for matplotlib, which Slicer does not bundle). Nothing else, so a
feature that needs pynrrd or matplotlib must install it at first use, as in Slicer.

Each harness run gets a throwaway environment on top (``session_environment``): a venv without
packages whose site-packages points at the base's, so a first-use ``pip install`` lands in the
throwaway one and the base stays as Slicer ships it.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINS = HERE / "slicer-5.12-python.txt"
SLICER_CORE = ("slicer-core==5.12.4.0", "vtk==9.6.0")
STAMP = ".slicer-5.12-stamp"


def _site_packages(env: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return env / "lib" / version / "site-packages"


def _fingerprint() -> str:
    return hashlib.sha256(PINS.read_bytes() + " ".join(SLICER_CORE).encode()).hexdigest()


def slicer_pins() -> dict[str, str]:
    """{distribution name (lower case): version} of what Slicer 5.12 bundles."""
    pins = {}
    for line in PINS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def ensure_base(env: Path) -> Path:
    """Create (or check) the base environment; its python."""
    env = Path(env).resolve()
    python = env / "bin" / "python"
    stamp = env / STAMP
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == _fingerprint():
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", "-r", str(PINS)], check=True)
    subprocess.run(pip + ["--no-deps", *SLICER_CORE], check=True)
    stamp.write_text(_fingerprint(), encoding="utf-8")
    return python


def _torch_links(dest: Path) -> Path | None:
    """A folder of links to this interpreter's torch and what it needs (the PyTorch extension stand-in's)."""
    try:
        importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    from packaging.requirements import Requirement  # the test environment's (``make test`` runs this file
    from packaging.utils import canonicalize_name  # with the bare system Python, which may lack packaging)

    dest.mkdir(parents=True, exist_ok=True)
    bundled = {canonicalize_name(n) for n in slicer_pins()}
    # (name, extras) pairs: torch asks for cuda-toolkit[cublas,cufft,...], whose wheels are named only
    # under those extras; missing them, pip in the session "completes" torch with ~870 MB of CUDA wheels
    todo, done = [("torch", frozenset()), ("torchvision", frozenset())], set()
    while todo:
        name, extras = todo.pop()
        name = canonicalize_name(name)
        if (name, extras) in done or name in bundled:
            continue
        done.add((name, extras))
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((req.name, frozenset(req.extras)))
        tops = set()
        for f in dist.files or []:
            top = Path(str(f)).parts[0]
            if not top.endswith(".pth") and top != "..":
                tops.add(top)
        root = Path(dist.locate_file(""))
        for top in tops:
            link = dest / top
            if not link.exists() and (root / top).exists():
                link.symlink_to(root / top)
    return dest


def session_environment(base: Path, dest: Path) -> dict:
    """A throwaway environment on top of ``base``: {'python', 'torch_site'}."""
    base, dest = Path(base).resolve(), Path(dest).resolve()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    site = _site_packages(dest)
    site.mkdir(parents=True, exist_ok=True)
    (site / "_slicer_base.pth").write_text(str(_site_packages(base)) + "\n", encoding="utf-8")
    torch = _torch_links(dest.parent / (dest.name + "-torch"))
    return {"python": str(dest / "bin" / "python"), "torch_site": str(torch) if torch else ""}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: environment.py ENV_DIR", file=sys.stderr)
        return 2
    python = ensure_base(Path(argv[0]))
    print(f"Slicer 5.12 environment ready: {python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
