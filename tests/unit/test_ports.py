"""The core's ports, checked on the source itself (docs/ARCHITECTURE.md, "Ports"):

- every protocol the core depends on is defined in `bot/core/ports.py` (the one named exception
  below);
- nothing is wired after construction: no code in `bot/` assigns a collaborator (a constructor
  parameter of a core class typed as a port, a core class or the store) to an attribute of
  another object, or calls `setattr` with such a name; and no core class re-assigns one of its
  own collaborators outside `__init__`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
CORE = BOT / "core"
PORTS = CORE / "ports.py"
# Protocols that stay beside their module for now, each with the reason.
PROTOCOLS_ELSEWHERE = {
    # the scheduler's protocol lives with its one-process implementation; the fleet queue
    # (being moved to `bot/fleet/` by another branch) implements it too
    ("jobs.py", "Scheduler"),
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def protocols(tree: ast.Module) -> list[str]:
    """Classes that subclass `typing.Protocol` (`Protocol` or `Protocol[...]`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            ast.unparse(base).split("[")[0].rsplit(".", 1)[-1] == "Protocol" for base in node.bases
        ):
            found.append(node.name)
    return found


def test_every_port_is_defined_in_ports_py() -> None:
    elsewhere = {(p.name, name) for p in sorted(CORE.rglob("*.py")) if p != PORTS
                 for name in protocols(_tree(p))}
    assert elsewhere - PROTOCOLS_ELSEWHERE == set()
    assert {"Presenter", "ResultImages", "Members", "KeyFailureNotice"} <= set(
        protocols(_tree(PORTS)))


def collaborator_types() -> set[str]:
    """The names a collaborator's type goes by: every class of the core and the store's
    protocol."""
    names = {"Store"}
    for path in sorted(CORE.rglob("*.py")):
        names |= {n.name for n in ast.walk(_tree(path)) if isinstance(n, ast.ClassDef)}
    return names


def collaborators(tree: ast.Module, types: set[str]) -> set[str]:
    """Parameters of `__init__`s whose annotation names one of `types` (`X`, `X | None`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            for arg in node.args.args + node.args.kwonlyargs:
                words = set(ast.unparse(arg.annotation).replace("|", " ").split()) \
                    if arg.annotation is not None else set()
                if words & types:
                    found.add(arg.arg)
    return found


def _in_init(parents: dict[ast.AST, ast.AST], node: ast.AST) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node.name == "__init__"
    return False


def wiring_after_construction(tree: ast.Module, names: set[str], *, own: bool) -> list[str]:
    """Assignments of a collaborator attribute (one of `names`) on another object
    (`service.presenter = p`, `self.runner.gate = g`), `setattr(x, "presenter", p)`, and with
    `own`, on `self` outside `__init__`."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets
                       for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        elif isinstance(node, ast.AnnAssign):  # (`x.images += n` counts, it wires nothing)
            targets = [node.target]
        for target in targets:
            if not isinstance(target, ast.Attribute) or target.attr not in names:
                continue
            on_self = isinstance(target.value, ast.Name) and target.value.id == "self"
            if not on_self or (own and not _in_init(parents, node)):
                found.append(f"{node.lineno}: {ast.unparse(target)}")
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "setattr" \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and node.args[1].value in names:
            found.append(f"{node.lineno}: setattr(..., {node.args[1].value!r})")
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def _core_collaborators() -> set[str]:
    types = collaborator_types()
    return {name for path in sorted(CORE.rglob("*.py"))
            for name in collaborators(_tree(path), types)}


def test_the_core_takes_its_collaborators_in_its_constructors() -> None:
    names = _core_collaborators()
    assert {"presenter", "result_images", "members", "key_failures", "gate", "runner"} <= names
    found = [f"{path.relative_to(ROOT)}:{where}" for path in sorted(BOT.rglob("*.py"))
             for where in wiring_after_construction(_tree(path), names,
                                                    own=path.is_relative_to(CORE))]
    assert found == []


def test_the_wiring_checker_sees_a_planted_violation() -> None:
    planted = ast.parse(
        "class Runner:\n"
        "    def __init__(self, store: Store, presenter: Presenter | None) -> None:\n"
        "        self.presenter = presenter\n"
        "        self.store = store\n"
        "    def later(self, p):\n"
        "        self.presenter = p\n"
        "def wire(service, p, members):\n"
        "    service.presenter = p\n"
        "    service.runner.gate, x = p, 1\n"
        "    setattr(service, 'members', members)\n"
        "    service.note = 'not a collaborator'\n"
    )
    names = collaborators(planted, {"Store", "Presenter"}) | {"gate", "members"}
    assert names == {"store", "presenter", "gate", "members"}
    assert wiring_after_construction(planted, names, own=True) == [
        "6: self.presenter", "8: service.presenter", "9: service.runner.gate",
        "10: setattr(..., 'members')"]
    assert wiring_after_construction(planted, names, own=False) == [
        "8: service.presenter", "9: service.runner.gate", "10: setattr(..., 'members')"]


def test_the_protocol_checker_sees_a_planted_protocol() -> None:
    planted = ast.parse("class A(Protocol): ...\nclass B(typing.Protocol[T]): ...\nclass C: ...\n")
    assert protocols(planted) == ["A", "B"]
