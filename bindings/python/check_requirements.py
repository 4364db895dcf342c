"""Prints the lines of a requirements file that the running interpreter does
not satisfy, one a line, and exits 1 if there are any (0 when all are met).

    python check_requirements.py [requirements-test.txt]

Installed distributions are looked up by name in their metadata, never by
importing a module: run from the repository root, the build/ output folder
would satisfy `import build` while the `build` package is missing.
Without the `packaging` package every line is reported (pip then installs
it and the rest).
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import List


def unmet(path: str) -> List[str]:
    lines = []
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if line:
                lines.append(line)
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return lines
    out = []
    for line in lines:
        req = Requirement(line)
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(line)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            out.append(line)
            continue
        # Extras: each of their requirements must be installed as well.
        if req.extras:
            for dep in metadata.requires(req.name) or []:
                d = Requirement(dep)
                if d.marker is None or not any(d.marker.evaluate({"extra": e}) for e in req.extras):
                    continue
                try:
                    metadata.version(d.name)
                except metadata.PackageNotFoundError:
                    out.append(line)
                    break
    return out


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "requirements-test.txt")
    missing = unmet(path)
    for line in missing:
        print(line)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
