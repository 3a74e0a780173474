"""The shape of the code that the style rules promise, checked on the source itself.

- no function outside the fakes (`bot/`, `bench/`, `tests/`) is longer than 60 lines; ruff's
  C901 covers complexity;
- dependencies point one way (docs/ARCHITECTURE.md): the core never imports discord.py or the
  Discord layer and reaches the store only through its protocol; the UI imports no cog, adapter,
  entry or store module; a cog never imports another cog; the fakes import nothing of the bot;
  the store imports only the core's models, errors and options (`Settings` where it picks a
  backend); the fleet queue imports no Discord layer and only the entry imports it.
- the imports among `bot/` modules (wherever they are written, `TYPE_CHECKING` included) form
  no cycle; cogs never import the bot (`bot.app`), which loads them: they take `BotServices`,
  and the bot has every member it names; components reach cogs through the router, never by
  `get_cog(...)`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(BOT.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module name `path` imports (absolute names; `from x import y` gives `x` and `x.y`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _shaped_sources() -> list[Path]:
    """The code the length rule covers: everything but the fakes (models of other services,
    whose request handlers follow the service's own structure)."""
    fakes = ROOT / "tests" / "fakes"
    return [p for folder in (BOT, ROOT / "bench", ROOT / "tests") for p in sorted(folder.rglob("*.py"))
            if not p.is_relative_to(fakes)]


def _too_long(source: str) -> list[tuple[int, str, int]]:
    """(line, name, length) of every function in `source` longer than the limit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append((node.lineno, node.name, length))
    return found


def test_no_function_is_longer_than_60_lines() -> None:
    too_long = [f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
                for path in _shaped_sources()
                for line, name, length in _too_long(path.read_text(encoding="utf-8"))]
    assert too_long == []


def test_the_checker_sees_a_long_function() -> None:
    """The check above really measures: a 61-line function is reported, a 60-line one is not,
    nested or async alike."""
    def body(lines: int) -> str:
        return "\n".join(f"    x{i} = {i}" for i in range(lines - 1))

    source = (f"def long():\n{body(61)}\n\n"
              f"def fits():\n{body(60)}\n\n"
              f"class C:\n    async def inner():\n" + body(61).replace("    ", "        ") + "\n")
    assert _too_long(source) == [(1, "long", 61), (125, "inner", 61)]


def _in(folder: str) -> list[Path]:
    return [p for p in _modules() if p.is_relative_to(BOT / folder)]


def test_the_core_knows_nothing_of_discord() -> None:
    discord_layer = ("bot.exts", "bot.ui", "bot.app", "bot.adapter")
    outside = [f"{path.relative_to(ROOT)} imports {name}" for path in _in("core")
               for name in sorted(_imports(path))
               if name.split(".")[0] == "discord" or name.startswith(discord_layer)]
    assert outside == []


def test_cogs_do_not_import_each_other_and_nothing_imports_a_cog() -> None:
    cogs = {_module_name(p) for p in (BOT / "exts").glob("*.py") if not p.name.startswith("_")}
    offenders = []
    for path in _modules():
        me = _module_name(path)
        for name in _imports(path) & cogs:
            if name != me:
                offenders.append(f"{me} imports {name}")
    assert offenders == []


def test_the_core_reaches_the_store_only_through_its_protocol() -> None:
    beside = [f"{path.relative_to(ROOT)} imports {name}" for path in _in("core")
              for name in sorted(_imports(path))
              if (name == "bot.store" or name.startswith("bot.store."))
              and name != "bot.store.protocol" and not name.startswith("bot.store.protocol.")]
    assert beside == []


def test_the_ui_renders_from_the_core_alone() -> None:
    allowed = ("bot.core", "bot.ui")
    outside = [f"{path.relative_to(ROOT)} imports {name}" for path in _in("ui")
               for name in sorted(_imports(path))
               if name.startswith("bot.") and not name.startswith(allowed)]
    assert outside == []


def test_the_fakes_know_nothing_of_the_bot() -> None:
    fakes = sorted((ROOT / "tests" / "fakes").glob("*.py"))
    assert fakes
    users = [p.name for p in fakes if any(n == "bot" or n.startswith("bot.") for n in _imports(p))]
    assert users == []


def test_the_day_boundary_is_defined_once() -> None:
    """Quotas, caps and reports count days and months from `bot.core.policy.day_start` and
    `month_start`; no other module computes midnight itself."""
    policy = BOT / "core" / "policy.py"
    midnight = re.compile(r"replace\([^)]*hour=0")
    elsewhere = [str(p.relative_to(ROOT)) for p in _modules()
                 if p != policy and midnight.search(p.read_text(encoding="utf-8"))]
    assert elsewhere == []
    assert midnight.search(policy.read_text(encoding="utf-8"))


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


# The store is repositories only (docs/ARCHITECTURE.md): of the bot it imports itself and the
# core's models, errors and options; `Settings` only where `open_store` picks a backend.
STORE_MAY_IMPORT = ("bot.store", "bot.core.models", "bot.core.errors", "bot.core.options")
BACKEND_PICKER = BOT / "store" / "__init__.py"


def _store_strays(path: Path, names: set[str]) -> set[str]:
    """What the store module at `path`, importing `names`, imports of the bot beyond the rule."""
    allowed = STORE_MAY_IMPORT + (("bot.config",) if path == BACKEND_PICKER else ())
    return {name for name in names if _under(name, ("bot",)) and not _under(name, allowed)}


def test_the_store_imports_only_the_cores_models_errors_and_options() -> None:
    store = [p for p in _modules() if p.is_relative_to(BOT / "store")]
    assert BACKEND_PICKER in store
    strays = [f"{_module_name(p)} imports {name}" for p in store
              for name in sorted(_store_strays(p, _imports(p)))]
    assert strays == []


def test_the_store_rule_sees_a_stray_import() -> None:
    """The check above really refuses: the scheduler, the fleet or `Settings` in a repository
    module; `Settings` is let through only where the backend is picked."""
    module = BOT / "store" / "postgres" / "database.py"
    names = {"bot.core.jobs", "bot.core.jobs.Job", "bot.fleet", "bot.config", "bot.core.models",
             "bot.core.models.Turn", "bot.core.errors", "bot.core.options", "bot.store.protocol",
             "asyncpg"}
    assert _store_strays(module, names) == {"bot.core.jobs", "bot.core.jobs.Job", "bot.fleet",
                                            "bot.config"}
    assert _store_strays(BACKEND_PICKER, {"bot.config", "bot.config.Settings"}) == set()


def test_the_fleet_queue_is_an_adapter_the_entry_alone_uses() -> None:
    """`bot/fleet/` imports no discord.py, cog, UI or entry module; the core, the store, the UI
    and the cogs never import it (the app wires it)."""
    fleet = [p for p in _modules() if p.is_relative_to(BOT / "fleet")]
    assert fleet
    discord_layer = ("discord", "bot.exts", "bot.ui", "bot.app", "bot.adapter", "bot.config")
    outward = [f"{_module_name(p)} imports {name}" for p in fleet
               for name in sorted(_imports(p)) if _under(name, discord_layer)]
    users = [f"{_module_name(p)} imports {name}" for p in _modules()
             if _under(_module_name(p), ("bot.core", "bot.store", "bot.ui", "bot.exts", "bot.adapter"))
             for name in sorted(_imports(p)) if _under(name, ("bot.fleet",))]
    assert outward == users == []

# ---------------------------------------------------------------------------- the adapter's shape
def _imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The `modules` that `path` imports, wherever the import is written. `from pkg import mod`
    names the submodule `pkg.mod` (not the package: Python loads a package's submodule while the
    package itself is still being initialised); `from mod import name` names `mod`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found |= subs or {node.module}
    return found & modules


def _import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of `package` (under `root`) it imports, wherever the import is
    written (module level, `if TYPE_CHECKING:`, inside a function)."""
    paths = sorted((root / package).rglob("*.py"))
    modules = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
               for p in paths}
    return {name: _imported_modules(path, set(modules)) - {name}
            for name, path in modules.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another (directly or not), sorted."""
    reach = {node: _reachable(graph, node) for node in graph}
    groups = {tuple(sorted({node} | {o for o in reach[node] if node in reach[o]}))
              for node in graph if node in reach[node]}
    return sorted(list(group) for group in groups)


def test_the_imports_of_bot_form_no_cycle() -> None:
    assert _cycles(_import_graph(ROOT, "bot")) == []


def test_the_cycle_check_sees_a_hidden_cycle(tmp_path: Path) -> None:
    """A cycle closed by a `TYPE_CHECKING` import, or by one inside a function, is reported."""
    package = tmp_path / "pkg"
    (package / "ui").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ui" / "__init__.py").write_text("")
    (package / "ui" / "a.py").write_text("from pkg.ui.b import B\n")
    (package / "ui" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.ui.a import A\n")
    (package / "c.py").write_text("def f():\n    from pkg import d\n")
    (package / "d.py").write_text("import pkg.c\nimport pkg.ui.a\n")
    (package / "ui" / "__init__.py").write_text("from pkg.ui.e import E\n")
    (package / "ui" / "e.py").write_text("from pkg.ui import f\n")  # a sibling, not a cycle
    (package / "ui" / "f.py").write_text("")
    assert _cycles(_import_graph(tmp_path, "pkg")) == [["pkg.c", "pkg.d"], ["pkg.ui.a", "pkg.ui.b"]]


def _names_the_bot(path: Path) -> bool:
    return any(n == "bot.app" or n.startswith("bot.app.") or n.startswith("bot.__main__")
               for n in _imports(path))


def test_cogs_never_import_the_bot(tmp_path: Path) -> None:
    offenders = [p.name for p in sorted((BOT / "exts").glob("*.py")) if _names_the_bot(p)]
    assert offenders == []
    planted = tmp_path / "cog.py"
    planted.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                       "    from bot.app import ImagineBot\n")
    assert _names_the_bot(planted)


def _cog_lookups(source: str) -> list[int]:
    """Lines that look a cog up by name (`….get_cog(...)`)."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get_cog"]


def test_nothing_finds_a_cog_by_name() -> None:
    """Components reach cogs through `bot/ui/router.py`, never `get_cog("Name")`."""
    found = [f"{p.relative_to(ROOT)}:{line}" for p in _modules()
             for line in _cog_lookups(p.read_text(encoding="utf-8"))]
    assert found == []
    assert _cog_lookups("async def cb(i):\n    cog = i.client.get_cog('Imagine')\n") == [2]


def _missing_members(protocol: type, cls: type) -> list[str]:
    """Members `protocol` names that `cls` neither defines nor declares."""
    declared: set[str] = set()
    for klass in cls.__mro__:
        declared |= set(vars(klass)) | set(getattr(klass, "__annotations__", {}))
    named = {n for n in vars(protocol) if not n.startswith("_")}
    named |= set(getattr(protocol, "__annotations__", {}))
    return sorted(named - declared)


def test_the_bot_has_what_cogs_are_promised() -> None:
    from typing import Protocol

    from bot.app import ImagineBot
    from bot.exts._bot import BotServices

    assert _missing_members(BotServices, ImagineBot) == []

    class Wider(BotServices, Protocol):
        ledger: int

        def audit(self) -> None: ...

    assert _missing_members(Wider, ImagineBot) == ["audit", "ledger"]
