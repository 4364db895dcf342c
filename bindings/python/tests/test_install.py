"""Packaging: the wheel (py3-none-<platform>, carrying libgunmetal.so and
py.typed), `pip install ./bindings/python`, and `make wheel`'s manylinux wheel
(build_wheel.sh) installed with no Go on the PATH, each into a fresh venv,
imported and used from outside the source tree."""

from __future__ import annotations

import glob
import os
import re
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


# ---- `make wheel`: the manylinux wheel, installed where there is no Go -------

BUILD_WHEEL = os.path.join(PKG_ROOT, "build_wheel.sh")


def test_readme_starts_with_the_install_line_and_make_wheel_runs_the_script() -> None:
    with open(os.path.join(PKG_ROOT, "README.md")) as f:
        readme = f.read()
    first_block = readme.split("```", 2)[1]
    assert first_block.startswith("sh\nmake wheel && pip install build/wheel/gunmetal-*.whl"), first_block
    assert readme.index("```sh") < readme.index("## "), "the install line comes before any section"
    with open(os.path.join(REPO, "Makefile")) as f:
        assert "\nwheel:\n\tbash bindings/python/build_wheel.sh $(B)/wheel\n" in f.read()


def _elf_facts(path: str) -> "tuple[set, str]":
    """The section names and the highest GLIBC_x.y version the library needs."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        sections = {s.name for s in elf.iter_sections()}
        needed = []
        verneed = elf.get_section_by_name(".gnu.version_r")
        assert verneed is not None
        for _, auxs in verneed.iter_versions():
            for aux in auxs:
                m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", aux.name)
                if m:
                    needed.append((int(m.group(1)), int(m.group(2))))
    major, minor = max(needed)
    return sections, f"{major}_{minor}"


def _env_without_go() -> Dict[str, str]:
    """The clean environment with every PATH entry that holds a `go` binary
    dropped, and Go's own variables unset: nothing there can build the library."""
    env = _clean_env()
    dirs = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and not os.access(os.path.join(d, "go"), os.X_OK)]
    env["PATH"] = os.pathsep.join(dirs)
    for k in list(env):
        if k.startswith("GO") or k.startswith("CGO_"):
            del env[k]
    assert shutil.which("go", path=env["PATH"]) is None
    return env


def test_make_wheel_is_manylinux_stripped_complete_and_installs_without_go(
    tmp_path: "os.PathLike[str]", server: Server
) -> None:
    tmp = str(tmp_path)
    tree = [os.path.join(PKG_ROOT, "build"), os.path.join(PKG_ROOT, "src", "gunmetal.egg-info"),
            os.path.join(PKG_ROOT, "src", "gunmetal", "libgunmetal.so")]
    before = {p: os.path.exists(p) for p in tree}
    out = os.path.join(tmp, "wheel")
    # One command (what `make wheel` runs); it needs Go to build the library.
    _run(["bash", BUILD_WHEEL, out], env=_clean_env(), cwd=REPO)
    assert {p: os.path.exists(p) for p in tree} == before, "build_wheel.sh must leave the source tree alone"

    (whl,) = glob.glob(os.path.join(out, "*.whl"))
    name = os.path.basename(whl)
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        meta = z.read("gunmetal-0.1.0.dist-info/METADATA").decode()
        wheel_meta = z.read("gunmetal-0.1.0.dist-info/WHEEL").decode()
        lib_bytes = z.read("gunmetal/libgunmetal.so")
        license_names = [n for n in names if n.startswith("gunmetal-0.1.0.dist-info/")
                         and n.rsplit("/", 1)[-1] == "LICENSE"]
        assert len(license_names) == 1, sorted(names)
        license_text = z.read(license_names[0]).decode()
    lib = os.path.join(tmp, "libgunmetal.so")
    with open(lib, "wb") as f:
        f.write(lib_bytes)

    # The tag: manylinux_<the newest glibc symbol version the library needs>.
    sections, glibc = _elf_facts(lib)
    arch = os.uname().machine
    assert name == f"gunmetal-0.1.0-py3-none-manylinux_{glibc}_{arch}.whl", (name, glibc)
    assert f"Tag: py3-none-manylinux_{glibc}_{arch}" in wheel_meta
    show = " ".join(_run([sys.executable, "-m", "auditwheel", "show", whl]).split())
    assert f'consistent with the following platform tag: "manylinux_{glibc}_{arch}"' in show, show
    assert "libc.so.6" in show

    # Stripped: no symbol table, no DWARF; the exported functions stay.
    assert ".symtab" not in sections and not any(s.startswith(".debug") for s in sections), sorted(sections)
    assert ".dynsym" in sections
    assert len(lib_bytes) < 8_500_000, len(lib_bytes)

    # Metadata a user (and an index) sees.
    with open(os.path.join(REPO, "LICENSE")) as f:
        repo_license = f.read()
    assert repo_license.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in repo_license
    assert "END OF TERMS AND CONDITIONS" in repo_license
    assert license_text == repo_license
    for line in ("Requires-Python: >=3.9", "License: Apache-2.0",
                 "Classifier: License :: OSI Approved :: Apache Software License",
                 "Classifier: Operating System :: POSIX :: Linux",
                 "Classifier: Programming Language :: Python :: 3.9", "Classifier: Typing :: Typed"):
        assert line + "\n" in meta, line
    urls = re.findall(r"^Project-URL: ([^,]+), (\S+)$", meta, re.M)
    assert {k for k, _ in urls} >= {"Homepage", "Source", "Issues"}, urls
    assert all("repository" in u for _, u in urls), urls
    assert meta.split("\n\n", 1)[1].startswith("# gunmetal for Python"), "the README is the description"

    # A fresh venv with no Go anywhere on its PATH: pip only unpacks the wheel.
    nogo = _env_without_go()
    venv = os.path.join(tmp, "venv")
    _run([sys.executable, "-m", "venv", venv], env=nogo)
    vpy = os.path.join(venv, "bin", "python")
    _run([vpy, "-c", "import shutil, sys; sys.exit(shutil.which('go') is not None)"], env=nogo)
    _run([vpy, "-m", "pip", "install", "--no-index", "--no-deps", "-q", whl], env=nogo, cwd=tmp)
    out_smoke = _run([vpy, "-c", SMOKE, str(server.http)], env=nogo, cwd=tmp)
    assert out_smoke.startswith("OK"), out_smoke
    installed = _run([vpy, "-c", "import gunmetal._ffi as f; print(f.LIBRARY_PATH)"], env=nogo, cwd=tmp).strip()
    with open(installed, "rb") as f:
        assert f.read() == lib_bytes, "the installed library is the wheel's, not a rebuilt one"
