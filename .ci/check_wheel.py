"""What the wheel must hold, checked against the clone it was built from: every tracked module
of improvd/ and training/ (the latter as improvd.training), every bundled model file of models/
(as improvd.bundled), and nothing at the top but improvd and its dist-info. The package list in
pyproject.toml is written out by hand, so a new subpackage is easy to leave out of it.

usage: python3 .ci/check_wheel.py dist/improvd-VERSION-py3-none-any.whl
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tracked(folder: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", folder], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return out.split()


def main(wheel: str) -> int:
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {f"improvd/{p[len('improvd/'):]}" for p in tracked("improvd") if p.endswith(".py")}
    want |= {f"improvd/training/{p[len('training/'):]}" for p in tracked("training") if p.endswith(".py")}
    models = [p for p in tracked("models") if p.endswith((".py", ".onnx", ".json", ".npz"))]
    want |= {f"improvd/bundled/{p[len('models/'):]}" for p in models}
    problems = [f"lacks {n}" for n in sorted(want - names)]
    tops = {n.split("/")[0] for n in names}
    problems += [f"installs a top-level {t!r}" for t in sorted(tops) if t != "improvd" and not t.endswith(".dist-info")]
    if not any(n == "improvd/bundled/jazz.onnx" for n in names):
        problems.append("has no bundled default model improvd/bundled/jazz.onnx")
    for p in problems:
        print(f"check_wheel: {Path(wheel).name} {p}: fix [tool.setuptools] packages / package-data in pyproject.toml",
              file=sys.stderr)
    if not problems:
        print(f"check_wheel: {Path(wheel).name}: {len(want)} modules and model files, top level improvd only")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
