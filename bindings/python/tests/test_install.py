"""Packaging: the wheel (py3-none-<platform>, carrying libgunmetal.so and
py.typed) and `pip install ./bindings/python` into fresh venvs, imported and
used from outside the source tree."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile
from typing import Dict, Iterator, List, Optional

import pytest

from conftest import PKG_ROOT, REPO, Server

SMOKE = r'''
import asyncio, os, sys
import gunmetal, gunmetal.aio
here = os.path.dirname(gunmetal.__file__)
assert here.startswith(sys.prefix), (here, sys.prefix)
assert os.path.exists(os.path.join(here, "py.typed"))
assert gunmetal._ffi.LIBRARY_PATH == os.path.join(here, "libgunmetal.so"), gunmetal._ffi.LIBRARY_PATH
port = int(sys.argv[1])
with gunmetal.open("127.0.0.1", port) as c:
    assert c.await_up(5) == "http"
    assert c.await_body(c.get("/bytes/5"), 5).body == b"abcde"
async def main():
    async with gunmetal.aio.open("127.0.0.1", port) as c:
        await c.up(5)
        assert await (await c.get("/bytes/3")).read() == b"abc"
asyncio.run(main())
print("OK", "%d.%d" % sys.version_info[:2], gunmetal.version())
'''

USER_CODE = '''
import gunmetal
def f(c: gunmetal.Connection) -> bytes:
    b: gunmetal.Body = c.await_body(c.get("/"), 1.0)
    return b.body
'''


def _clean_env() -> Dict[str, str]:
    env = dict(os.environ)
    for k in ("PYTHONPATH", "GUNMETAL_LIBRARY", "GUNMETAL_SOURCE_DIR", "PYTHONHOME"):
        env.pop(k, None)
    return env


def _run(argv: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
         timeout: float = 300) -> str:
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{argv} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _library() -> str:
    lib = os.environ.get("GUNMETAL_LIBRARY")
    if not lib:
        import gunmetal._ffi

        lib = gunmetal._ffi.LIBRARY_PATH
    assert os.path.exists(lib)
    return lib


@pytest.fixture
def clean_tree() -> Iterator[None]:
    """Leaves bindings/python as it was (setuptools builds in-tree)."""
    paths = [os.path.join(PKG_ROOT, "build"), os.path.join(PKG_ROOT, "src", "gunmetal.egg-info")]
    existed = {p: os.path.exists(p) for p in paths}
    yield
    for p, had in existed.items():
        if not had:
            shutil.rmtree(p, ignore_errors=True)


def _oldest_python() -> str:
    """The oldest CPython >= 3.9 on this machine, to show one wheel serves it."""
    cands = [shutil.which(f"python3.{m}") for m in (9, 10)]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3")))
    for c in cands:
        if c and os.path.exists(c):
            try:
                _run([c, "-c", "import venv, ensurepip"], timeout=30)
                return c
            except (AssertionError, subprocess.TimeoutExpired):
                continue
    return sys.executable


def test_wheel_tag_contents_and_install_on_oldest_python(
    tmp_path: "os.PathLike[str]", server: Server, clean_tree: None
) -> None:
    tmp = str(tmp_path)
    env = _clean_env()
    env["GUNMETAL_LIBRARY"] = _library()
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", os.path.join(tmp, "dist"),
          PKG_ROOT], env=env)
    (whl,) = glob.glob(os.path.join(tmp, "dist", "*.whl"))
    name = os.path.basename(whl)
    assert name.startswith("gunmetal-0.1.0-py3-none-"), name
    assert not name.endswith("-any.whl"), "the wheel must carry a platform tag"
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        wheel_meta = z.read("gunmetal-0.1.0.dist-info/WHEEL").decode()
        meta = z.read("gunmetal-0.1.0.dist-info/METADATA").decode()
    for f in ("gunmetal/__init__.py", "gunmetal/aio.py", "gunmetal/_ffi.py", "gunmetal/py.typed",
              "gunmetal/libgunmetal.so"):
        assert f in names, f
    assert "Root-Is-Purelib: false" in wheel_meta
    assert "Requires-Python: >=3.9" in meta

    py = _oldest_python()
    venv = os.path.join(tmp, "venv-old")
    _run([py, "-m", "venv", venv])
    vpy = os.path.join(venv, "bin", "python")
    _run([vpy, "-m", "pip", "install", "--no-index", "--no-deps", "-q", whl], env=_clean_env())
    out = _run([vpy, "-c", SMOKE, str(server.http)], env=_clean_env(), cwd=tmp)
    assert out.startswith("OK"), out


def test_pip_install_source_dir_into_fresh_venv(
    tmp_path: "os.PathLike[str]", server: Server, clean_tree: None
) -> None:
    """`pip install ./bindings/python`: builds libgunmetal.so with go (or
    takes GUNMETAL_LIBRARY when go is missing) into the package."""
    tmp = str(tmp_path)
    venv = os.path.join(tmp, "venv")
    # --system-site-packages: setuptools and wheel for --no-build-isolation,
    # so the test needs no network. gunmetal itself is not installed there.
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv])
    vpy = os.path.join(venv, "bin", "python")
    env = _clean_env()
    if shutil.which("go") is None:
        env["GUNMETAL_LIBRARY"] = _library()
    r = subprocess.run([vpy, "-c", "import gunmetal"], env=_clean_env(), cwd=tmp, capture_output=True)
    assert r.returncode != 0, "gunmetal must not be importable before the install"
    _run([vpy, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-q", "./bindings/python"],
         env=env, cwd=REPO)
    out = _run([vpy, "-c", SMOKE, str(server.http)], env=_clean_env(), cwd=tmp)
    assert out.startswith("OK"), out
    # py.typed: a user's code type-checks against the installed package
    user = os.path.join(tmp, "user.py")
    with open(user, "w") as f:
        f.write(USER_CODE)
    _run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", vpy, user],
         env=_clean_env(), cwd=tmp)
    _run([vpy, "-m", "pip", "uninstall", "-y", "-q", "gunmetal"], env=_clean_env())
