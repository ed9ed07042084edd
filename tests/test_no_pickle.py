"""No unsafe deserialisation anywhere in the package source (qa/, app.py, scripts/).

The scan walks the syntax tree, so a docstring saying "no pickle" or `allow_pickle=False` is fine,
while `import pickle`, `pickle.loads`, `torch.load(...)` without `weights_only=True`,
`allow_pickle=True`, `marshal`, `shelve`, `eval(` / `exec(` and `trust_remote_code=True` fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "jsonpickle"}
BANNED_CALLS = {"eval", "exec"}
# Loaders that unpickle unless told otherwise: (module alias, function).
PICKLING_LOADERS = {("pd", "read_pickle"), ("pandas", "read_pickle"), ("np", "loads"), ("numpy", "loads")}


def _sources() -> list[Path]:
    files = sorted((ROOT / "qa").rglob("*.py")) + [ROOT / "app.py"] + sorted((ROOT / "scripts").glob("*.py"))
    return [f for f in files if f.is_file()]


def _name(node: ast.AST) -> str:
    """Dotted name of a Name/Attribute chain ("torch.load"), or ""."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_const(node: ast.AST | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def problems(source: str, filename: str = "<source>") -> list[str]:
    """Every unsafe-deserialisation construct in a Python source, as "file:line: what"."""
    found = []
    tree = ast.parse(source, filename)

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    report(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in BANNED_MODULES:
                report(node, f"from {node.module} import ...")
            if node.module == "torch" and any(a.name == "load" for a in node.names):
                report(node, "from torch import load (check weights_only at the call instead)")
        elif isinstance(node, ast.Name) and node.id in BANNED_MODULES:
            report(node, f"use of {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in BANNED_MODULES | {"read_pickle"}:
            report(node, f"use of .{node.attr}")
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            if name in BANNED_CALLS or name.endswith(tuple(f"builtins.{c}" for c in BANNED_CALLS)):
                report(node, f"{name}(...)")
            if name.endswith("torch.load") or name == "torch.load":
                if not _is_const(keywords.get("weights_only"), True):
                    report(node, "torch.load without weights_only=True")
            if tuple(name.rsplit(".", 1)) in PICKLING_LOADERS:
                report(node, f"{name}(...) unpickles")
            if "allow_pickle" in keywords and not _is_const(keywords["allow_pickle"], False):
                report(node, "allow_pickle other than False")
            if "trust_remote_code" in keywords and not _is_const(keywords["trust_remote_code"], False):
                report(node, "trust_remote_code other than False")
            if name.endswith("yaml.load") and not any(
                    _name(v).endswith("SafeLoader") for k, v in keywords.items() if k == "Loader"):
                report(node, "yaml.load without SafeLoader")
    return found


def test_package_sources_exist():
    names = {p.name for p in _sources()}
    assert {"api.py", "store.py", "lexical.py", "dense.py", "embedding.py", "app.py"} <= names


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unsafe_deserialisation(path):
    assert problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))) == []


BAD = {
    "import pickle": "import pickle",
    "from pickle": "from pickle import loads",
    "pickle attribute": "import x\nx.pickle.loads(b'')",
    "marshal": "import marshal",
    "shelve": "import shelve",
    "eval": "eval('1 + 1')",
    "exec": "exec('x = 1')",
    "builtins eval": "import builtins\nbuiltins.eval('1')",
    "torch.load": "import torch\ntorch.load('m.pt')",
    "torch.load weights_only False": "import torch\ntorch.load('m.pt', weights_only=False)",
    "from torch import load": "from torch import load",
    "allow_pickle True": "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
    "allow_pickle variable": "import numpy as np\nflag = True\nnp.load('x.npy', allow_pickle=flag)",
    "read_pickle": "import pandas as pd\npd.read_pickle('x')",
    "joblib": "import joblib",
    "trust_remote_code": "SentenceTransformer('m', trust_remote_code=True)",
    "yaml.load": "import yaml\nyaml.load(open('x'))",
}
GOOD = {
    "docstring": '"""Plain files, no pickle: allow_pickle=True is never used, nor eval( or torch.load."""',
    "comment": "# import pickle\nx = 1",
    "allow_pickle False": "import numpy as np\nnp.load('x.npy', allow_pickle=False)\nnp.save('x', a, allow_pickle=False)",
    "torch.load weights_only": "import torch\ntorch.load('m.pt', weights_only=True)",
    "method named evaluate": "def evaluate(x):\n    return x.eval_score()\nobj.eval()",
    "string": "message = 'never eval( or pickle'",
    "yaml safe": "import yaml\nyaml.load(f, Loader=yaml.SafeLoader)",
}


@pytest.mark.parametrize("case", BAD)
def test_scanner_catches(case):
    assert problems(BAD[case]), case


@pytest.mark.parametrize("case", GOOD)
def test_scanner_allows(case):
    assert problems(GOOD[case]) == [], case
