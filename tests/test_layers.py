"""Imports run one way. Each runtime module has a layer; a module may import only from its
own layer's modules or lower ones, so no two parts reach into each other and the daemon never
reaches the trainer. Read from the source (every import, the lazy ones inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "improvd"

# lowest first; a module not named here takes its package's layer
LAYERS = [
    ["improvd", "improvd.midi", "improvd.encoding", "improvd.sampling", "improvd.notify", "improvd.logs", "improvd.progress",
     "improvd.midi.normalise", "improvd.midi.arrival", "improvd.tempo_model", "improvd.tempo_net", "improvd.tempo", "improvd.scheduler",
     "improvd.registry"],
    ["improvd.chords"],
    ["improvd.encoding.events", "improvd.encoding.grammar", "improvd.encoding.abc", "improvd.abcstream",
     "improvd.encoding.jazz", "improvd.motifs"],
    ["improvd.config", "improvd.clock", "improvd.midi.files", "improvd.midi.ports", "improvd.models.runtime"],
    ["improvd.encoding.pianoroll", "improvd.models.card", "improvd.models"],
    ["improvd.models.base", "improvd.rules"],
    ["improvd.models.jazz", "improvd.models.deepjazz", "improvd.models.folk", "improvd.models.rnnrbm"],
    ["improvd.voice"],
    ["improvd.performer", "improvd.controls"],
    ["improvd.modes.base"],
    ["improvd.modes.call_response", "improvd.modes.duet", "improvd.modes.harmonize", "improvd.modes"],
    ["improvd.engine"],
    ["improvd.session"],
    ["improvd.replay", "improvd.takes", "improvd.view", "improvd.plot", "improvd.render", "improvd.panic",
     "improvd.learn", "improvd.evaluation.data"],
    ["improvd.live", "improvd.evaluation.jazz", "improvd.evaluation.timing"],
    ["improvd.bench", "improvd.evaluation.response", "improvd.evaluation.timing_fit", "improvd.evaluation"],
    ["improvd.cli", "improvd.__main__"],
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("improvd") and node.level == 0:
            found.add(node.module)
            for alias in node.names:  # "from improvd.models import runtime" imports the module runtime
                if f"{node.module}.{alias.name}" in RANK:
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("improvd")}
    return found


def rank(name: str) -> int:
    while name not in RANK:
        name = name.rpartition(".")[0]
    return RANK[name]


def runtime_modules():
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        yield name, path


def test_every_runtime_module_has_a_layer():
    missing = [name for name, _ in runtime_modules() if name not in RANK]
    assert missing == [], f"give these a layer in LAYERS: {missing}"


def test_imports_run_downwards_only():
    upward = []
    for name, path in runtime_modules():
        for dep in imports(path):
            if dep.startswith("improvd.training") or dep.startswith("improvd.bundled"):
                continue  # checked below
            if dep != name and not (dep == "improvd" or name.startswith(dep + ".")) and rank(dep) > rank(name):
                upward.append(f"{name} -> {dep}")
    assert upward == []


def test_the_runtime_never_imports_the_trainer_by_name():
    """training/ imports improvd, never the reverse: the offline commands find a family's
    trainer through the table training/ keeps, by a dotted name resolved when a command runs."""
    direct = [f"{name} -> {dep}" for name, path in runtime_modules() for dep in imports(path)
              if dep.startswith("improvd.training")]
    assert direct == []
