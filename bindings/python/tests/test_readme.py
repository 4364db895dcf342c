"""The README's examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import PKG_ROOT, SRC


def _blocks(path: str) -> "list[str]":
    with open(path) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


BLOCKS = _blocks(os.path.join(PKG_ROOT, "README.md"))
# The project's README carries the same examples: they must run too.
BLOCKS += _blocks(os.path.join(PKG_ROOT, "..", "..", "README.md"))


def test_readme_has_sync_and_asyncio_examples() -> None:
    assert len(BLOCKS) >= 2
    assert any("gunmetal.open(" in b for b in BLOCKS)
    assert any("gunmetal.aio.open(" in b for b in BLOCKS)


def test_readme_starts_with_install_then_sync_and_asyncio_response_examples() -> None:
    with open(os.path.join(PKG_ROOT, "README.md")) as f:
        text = f.read()
    fences = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    (lang0, install), (lang1, sync), (lang2, aio) = fences[:3]
    assert lang0 == "sh" and "pip install" in install
    assert text.index("```sh") < text.index("```python")  # the install line comes first
    assert lang1 == "python" and "gunmetal.open(" in sync and "conn.fetch(" in sync and "resp.json()" in sync
    assert lang2 == "python" and "gunmetal.aio.open(" in aio and "await resp.json()" in aio


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i: int, tmp_path: "os.PathLike[str]") -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-c", BLOCKS[i]], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if "resp.json()" in BLOCKS[i]:  # the first examples: the Response of a JSON answer
        assert "200 application/json {'hello': 'world'}" in r.stdout
        if "gunmetal.aio" in BLOCKS[i]:
            assert r.stdout.splitlines()[-1] == "True"
    elif "conn.connect(" in BLOCKS[i]:  # the proxy example: its own origin and tinyproxy
        assert "tunnel: http\n200 hello, Host: 127.0.0.1:" in r.stdout and "['connect']" in r.stdout
    elif "open_raw(" in BLOCKS[i]:  # the raw stream example: its own server echoes upper-cased
        assert "echo: b'HELLO\\n'" in r.stdout and "echo: b'WORLD\\n'" in r.stdout
    elif 'print("up:"' in BLOCKS[i] and "ConnectionRefused" not in BLOCKS[i]:
        assert "up: http" in r.stdout
        if "conn.response(" in BLOCKS[i]:
            assert "200 text/html" in r.stdout
    else:  # the example of a refused connection
        assert "refused: econnrefused" in r.stdout
    print(r.stdout)
