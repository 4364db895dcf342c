"""Test prerequisites come from requirements-test.txt, checked by installed
distribution (metadata), never guessed by import (issue 10, item 7)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import PKG_ROOT, REPO

CHECK = os.path.join(PKG_ROOT, "check_requirements.py")
REQS = os.path.join(PKG_ROOT, "requirements-test.txt")


def _check(reqs: str, cwd: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, CHECK, reqs], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_test_requirement_is_installed() -> None:
    # In a fresh venv, before the fix, `build` was never installed (the
    # repository's build/ folder passed for it) and the wheel test failed.
    r = _check(REQS, REPO)
    assert r.returncode == 0 and r.stdout == "", f"not installed: {r.stdout}{r.stderr}"
    from importlib import metadata

    for name in ("build", "pytest", "mypy", "wheel", "setuptools", "packaging"):
        metadata.version(name)  # raises when missing


def test_a_folder_named_like_a_package_does_not_count(tmp_path: "os.PathLike[str]") -> None:
    # The cause of item 7: a directory on the path satisfies `import X`.
    d = str(tmp_path)
    os.mkdir(os.path.join(d, "gm_no_such_dist_x1"))
    reqs = os.path.join(d, "reqs.txt")
    with open(reqs, "w") as f:
        f.write("# comment\npytest>=7  # installed\ngm_no_such_dist_x1\npytest>=999\n")
    r = subprocess.run([sys.executable, "-c", "import gm_no_such_dist_x1"], cwd=d, capture_output=True)
    assert r.returncode == 0, "the folder should be importable from its parent"
    r = _check(reqs, d)
    assert r.returncode == 1
    assert r.stdout.split("\n") == ["gm_no_such_dist_x1", "pytest>=999", ""], r.stdout


def test_run_tests_sh_installs_from_the_requirements_file() -> None:
    with open(os.path.join(PKG_ROOT, "run_tests.sh")) as f:
        script = f.read()
    assert "check_requirements.py" in script and "-r \"$reqs\"" in script
    assert "have \"import" not in script, "prerequisites must not be guessed by import"
