"""The one gate, made impossible to forget, checked on the source itself
(docs/ARCHITECTURE.md, "The gate and the runner"):

- only the runner (`bot/core/runner.py`, and `generation.py`, its half that builds, starts and
  stops a turn's request) calls the image client or the text client (and the
  operator's own `doctor --probe`, unreachable from Discord); the clients'
  own modules are the only ones that touch the SDK's Responses API;
- a component handler (a button, a select, a form) gets the turn or conversation named in its
  `custom_id` only through `turn_in` / `conversation_in`, which check that it belongs to the
  interaction's server and channel; the `DynamicItem`s and forms in `bot/ui` hand their ids to
  such a handler and call nothing else;
- the conversation rules record a paid turn only through the gate's `record`, and change a
  conversation only after its access and ownership checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
RUNNER = {BOT / "core" / "runner.py", BOT / "core" / "generation.py"}
CLIENTS = {BOT / "core" / "image_client.py": "ImageClient", BOT / "core" / "describe.py": "Describer"}
# The operator's own raw requests (`python -m bot doctor --probe`: priced and confirmed before it
# runs, from the command line): deliberately the SDK itself, and unreachable from Discord.
OPERATOR_PROBES = {BOT / "doctor_probe.py"}
# what code holds a client by: an attribute or variable of one of these names
CLIENT_NAMES = ("images", "image_client", "client", "describer")
ID_PARAMETERS = {"turn_id", "conversation_id"}
CHECKED_LOOKUPS = {"turn_in", "conversation_in"}
# the conversation changes and the gate call each must make
GATED = {"_record": "record", "continue_from": "check_change", "delete": "check_owner",
         "cancel": "check_owner"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _api_methods() -> set[str]:
    """The clients' async methods (each makes or steers a billed API call)."""
    names: set[str] = set()
    for path, cls in CLIENTS.items():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef) and node.name == cls:
                names |= {f.name for f in node.body if isinstance(f, ast.AsyncFunctionDef)
                          and not f.name.startswith("_")}
    return names


def client_calls(tree: ast.Module, methods: set[str]) -> list[str]:
    """`x.images.generate(...)`, `describer.describe(...)`, `client.responses.create(...)`: calls
    of a client method on something held by a client's name, and any use of `.responses`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "responses":
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = ast.unparse(node.func.value).rsplit(".", 1)[-1]
        if node.func.attr in methods and (receiver.endswith(CLIENT_NAMES)
                                          or node.func.attr in {"generate", "resume"}):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}")
    return found


def test_the_clients_make_billed_calls() -> None:
    assert {"generate", "resume", "cancel", "describe"} <= _api_methods()


def test_only_the_runner_calls_the_image_and_text_clients() -> None:
    methods = _api_methods()
    found = [f"{path.relative_to(ROOT)}:{call}" for path in sorted(BOT.rglob("*.py"))
             if path not in RUNNER and path not in CLIENTS and path not in OPERATOR_PROBES
             for call in client_calls(_tree(path), methods)]
    assert found == []


def test_no_member_path_reaches_the_operators_probes() -> None:
    """The probes are the entry's alone: no cog, UI or core module imports them."""
    names = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in OPERATOR_PROBES}
    importers = [str(p.relative_to(ROOT)) for folder in ("exts", "ui", "core")
                 for p in sorted((BOT / folder).rglob("*.py"))
                 if any((isinstance(n, ast.ImportFrom) and n.module in names)
                        or (isinstance(n, ast.Import) and any(a.name in names for a in n.names))
                        for n in ast.walk(_tree(p)))]
    assert importers == []


def test_the_client_checker_sees_a_call_outside_the_runner() -> None:
    planted = ast.parse("async def f(self):\n    await self.bot.runner.images.generate(r)\n"
                        "    await self.describer.describe(i)\n"
                        "    await c.responses.create(**p)\n    await self.service.cancel(t, a)\n")
    assert len(client_calls(planted, _api_methods())) == 3


# ------------------------------------------------------------------ component handlers
def _calls(function: ast.AST) -> set[str]:
    return {node.func.attr for node in ast.walk(function)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}


def ui_handlers() -> set[str]:
    """The cog methods buttons, selects and forms (in `bot/ui`, some in `bot/exts`) hand their
    interactions to: forms call the cog that opened them (`cog.on_refine_submit(...)`),
    persistent components reach the handler a cog registered with the router
    (`router.add(TURN_BUTTON, self.on_turn_button)`)."""
    names = set()
    for path in sorted([*(BOT / "ui").glob("*.py"), *(BOT / "exts").glob("*.py")]):
        for node in ast.walk(_tree(path)):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if ast.unparse(node.func.value) in {"cog", "self.cog"}:
                names.add(node.func.attr)
            elif node.func.attr == "add" and ast.unparse(node.func.value).endswith("router") \
                    and len(node.args) == 2 and isinstance(node.args[1], ast.Attribute):
                names.add(node.args[1].attr)
    return names


def _only_opens_a_form(function: ast.AST) -> bool:
    """A handler whose one answer is a form (`send_modal`) and that does nothing else with the
    id but hand it to the form: the form's submission handler is the one held to the check (a
    form must be the first response, with nothing waited for before it: issue 23)."""
    return _calls(function) <= {"send_modal", "shed"} and "send_modal" in _calls(function)


def unchecked_handlers(tree: ast.Module, handlers: set[str] = frozenset()) -> list[str]:
    """Handlers (`on_*`, or what a `bot/ui` item calls) that take an id from a `custom_id` but
    never look it up through the gate's checked lookups (unless they only open a form that
    carries it); and lookups of a turn by bare id (`.turn(...)`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "turn":
            found.append(f"{node.lineno}: {ast.unparse(node.func)}")
        if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) \
                or not (node.name.startswith("on_") or node.name in handlers):
            continue
        params = {a.arg for a in node.args.args + node.args.kwonlyargs}
        if params & ID_PARAMETERS and not _calls(node) & CHECKED_LOOKUPS \
                and not _only_opens_a_form(node):
            found.append(f"{node.lineno}: {node.name}")
    return found


def test_component_handlers_take_their_turn_through_the_gate() -> None:
    handlers = ui_handlers()
    found = [f"{path.relative_to(ROOT)}:{handler}" for path in sorted((BOT / "exts").glob("*.py"))
             for handler in unchecked_handlers(_tree(path), handlers)]
    assert found == []


def test_the_ui_hands_ids_to_known_handlers() -> None:
    assert {"on_turn_button", "on_variant_button", "on_continue", "unpublish",
            "open_report_form", "on_mod_action"} <= ui_handlers()


def ui_callbacks_acting_alone(tree: ast.Module) -> list[str]:
    """`callback`/`on_submit` of a `bot/ui` item that reaches the core itself instead of
    handing its ids to a cog's `on_*` handler."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef) and node.name in {"callback", "on_submit"}:
            used = {ast.unparse(n) for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            reached = [u for u in used if any(part in u.split(".") for part in
                                              ("service", "gate", "runner", "store"))]
            if reached:
                found.append(f"{node.lineno}: {node.name} uses {sorted(reached)}")
    return found


def test_ui_items_hand_their_ids_to_a_handler() -> None:
    found = [f"{path.relative_to(ROOT)}:{callback}" for path in sorted((BOT / "ui").glob("*.py"))
             for callback in ui_callbacks_acting_alone(_tree(path))]
    assert found == []


def test_the_handler_checker_sees_an_unchecked_handler() -> None:
    planted = ast.parse(
        "class C:\n"
        "    async def on_thing_button(self, interaction, turn_id):\n"
        "        turn = await self.service.turn(turn_id)\n"
        "    async def on_fine(self, interaction, turn_id):\n"
        "        turn = await self.service.turn_in(turn_id, place_of(interaction))\n"
        "    async def callback(self, interaction):\n"
        "        await interaction.client.service.delete(t, a)\n"
        "    async def on_form(self, interaction, turn_id):\n"
        "        await interaction.response.send_modal(Form(turn_id))\n"
        "    async def on_form_and_more(self, interaction, turn_id):\n"
        "        await self.service.cancel(turn_id)\n"
        "        await interaction.response.send_modal(Form(turn_id))\n"
    )
    assert sorted(f.split(": ")[1] for f in unchecked_handlers(planted)) == [
        "on_form_and_more", "on_thing_button", "self.service.turn"]
    assert len(ui_callbacks_acting_alone(planted)) == 1


# ------------------------------------------------------------------ the conversation rules
def test_paid_turns_and_conversation_changes_pass_the_gate() -> None:
    rules = {"conversations.py": "ConversationService", "submission.py": "Submissions"}
    methods = {f.name: f for module, name in rules.items()
               for n in ast.walk(_tree(BOT / "core" / module))
               if isinstance(n, ast.ClassDef) and n.name == name
               for f in n.body if isinstance(f, ast.AsyncFunctionDef)}
    missing = {name: call for name, call in GATED.items()
               if call not in {ast.unparse(n.func).removeprefix("self.gate.")
                               for n in ast.walk(methods[name]) if isinstance(n, ast.Call)}}
    assert missing == {}
    # and only `_record` creates a turn
    creators = [name for name, f in methods.items()
                if "self.store.turns.create" in ast.unparse(f)]
    assert creators == ["_record"]
