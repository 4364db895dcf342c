"""Build hooks for gunmetal's Python package (the metadata is in pyproject.toml).

build_py puts libgunmetal.so inside the package:
  - GUNMETAL_LIBRARY=/path/libgunmetal.so: copy that file (as it is: strip it
    first if it should be stripped);
  - else build it with `go build -buildmode=c-shared -ldflags='-s -w' ./capi` in the gunmetal
    source tree: GUNMETAL_SOURCE_DIR, or the directory two levels up (the repo
    root, when building from bindings/python).

bdist_wheel tags the wheel py3-none-<platform>: the package is pure Python
(ctypes) around a platform library, so one wheel serves every CPython >= 3.9
on that platform. `auditwheel repair` (build_wheel.sh, `make wheel`) turns
that platform tag into the manylinux one.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:  # setuptools >= 70.1 ships bdist_wheel
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # older setuptools: the wheel package's
    from wheel.bdist_wheel import bdist_wheel  # type: ignore

HERE = os.path.dirname(os.path.abspath(__file__))
LIBNAME = "libgunmetal.so"


def _source_dir():
    cands = [os.environ.get("GUNMETAL_SOURCE_DIR"), os.path.join(HERE, "..", "..")]
    for d in cands:
        if d and os.path.isfile(os.path.join(d, "go.mod")) and os.path.isdir(os.path.join(d, "capi")):
            return os.path.abspath(d)
    return None


def _make_library(target):
    target = os.path.abspath(target)
    lib = os.environ.get("GUNMETAL_LIBRARY")
    if lib:
        if not os.path.isfile(lib):
            raise SystemExit(f"gunmetal: GUNMETAL_LIBRARY={lib} does not exist")
        shutil.copyfile(lib, target)
        return
    src = _source_dir()
    if src is None:
        raise SystemExit(
            "gunmetal: cannot find libgunmetal.so to package. Set GUNMETAL_LIBRARY="
            "/path/to/libgunmetal.so, or GUNMETAL_SOURCE_DIR to the gunmetal source tree "
            "(it is built with `go build -buildmode=c-shared ./capi`)."
        )
    go = shutil.which("go")
    if go is None:
        raise SystemExit("gunmetal: building libgunmetal.so needs Go on PATH (or set GUNMETAL_LIBRARY)")
    # -s -w: no symbol table, no DWARF (7 MB instead of 10); the exported
    # functions (.dynsym) and Go's tracebacks (pclntab) are unaffected.
    print(f"gunmetal: go build -buildmode=c-shared -ldflags='-s -w' -o {target} ./capi (in {src})")
    tmp = target + ".tmp"
    subprocess.run([go, "build", "-buildmode=c-shared", "-ldflags=-s -w", "-o", tmp, "./capi"], cwd=src, check=True)
    header = tmp[: -len(".tmp")] + ".h"  # cgo writes its own header next to it
    for h in (tmp + ".h", os.path.splitext(tmp)[0] + ".h", header):
        if os.path.exists(h):
            os.remove(h)
    os.replace(tmp, target)


class BuildPy(build_py):
    def run(self):
        super().run()
        if self.dry_run:
            return
        pkg = os.path.join(self.build_lib, "gunmetal")
        os.makedirs(pkg, exist_ok=True)
        _make_library(os.path.join(pkg, LIBNAME))


class BdistWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False  # the .so: platlib, platform tag

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


class BinaryDistribution(Distribution):
    """Carries a platform library: installed to platlib, wheel not pure."""

    def has_ext_modules(self):
        return True


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPy, "bdist_wheel": BdistWheel})
