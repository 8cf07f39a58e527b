"""The layout's rules, checked on the source: where each outside library may be imported, and how
long a module may grow, so that the feature packages stay what README's Layout says they are."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = sorted(p for folder in ("bot", "handlers", "storage") for p in (ROOT / folder).rglob("*.py"))
# Where each library may be imported (a path prefix relative to the repository).
ALLOWED_IMPORTS = {
    "sqlalchemy": ("storage/",),
    "slack_bolt": ("handlers/", "bot/app.py"),
}
ENVIRONMENT_READERS = ("bot/settings.py", "bot/validation_settings.py")
# Modules may grow to about 400 lines; the validator's rules are one table and stay together, and the
# SQLModel tables are one module (DESIGN.md: every table in one place, as the migrations see them).
MODULE_LINES = 450
LONG_MODULES = {"bot/datasets/validator.py", "storage/models.py"}


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("library", sorted(ALLOWED_IMPORTS))
def test_libraries_are_imported_only_where_the_layout_puts_them(library: str) -> None:
    offenders = [
        _relative(path)
        for path in CODE
        if library in _imported(ast.parse(path.read_text()))
        and not _relative(path).startswith(ALLOWED_IMPORTS[library])
    ]
    assert not offenders, f"{library} imported outside {ALLOWED_IMPORTS[library]}: {offenders}"


def test_only_settings_read_the_environment() -> None:
    offenders = []
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Name):
                name = node.id
            else:
                continue
            if name in ("environ", "getenv") and _relative(path) not in ENVIRONMENT_READERS:
                offenders.append(f"{_relative(path)}:{node.lineno}")
    assert not offenders, f"the environment is read outside settings: {offenders}"


def test_no_module_outgrows_its_room() -> None:
    long = {
        _relative(path): lines
        for path in CODE
        if (lines := path.read_text().count("\n")) > MODULE_LINES and _relative(path) not in LONG_MODULES
    }
    assert not long, f"split these by what they do: {long}"


def test_every_listener_module_has_a_feature_package_of_its_name() -> None:
    """handlers/<feature>.py leads to bot/<feature>/: two hops from the listener table to the behaviour."""
    plumbing = {"__init__", "arguments", "clicks", "commands", "workspaces"}
    listeners = {p.stem for p in (ROOT / "handlers").glob("*.py")} - plumbing
    missing = sorted(name for name in listeners if not (ROOT / "bot" / name / "__init__.py").is_file())
    assert not missing, f"listener modules without a bot/<name>/ package: {missing}"


def test_every_refusal_says_what_kind_it_is() -> None:
    """NotFound, NotAllowed, InvalidInput, UsageError or a provider's: never the bare base class, so the
    one mapping (bot.errors.refusal_of) and a reader of the log can tell them apart."""
    offenders = [
        f"{_relative(path)}:{node.lineno}"
        for path in CODE
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "UserFacingError"
    ]
    assert not offenders, f"raise a kind of UserFacingError instead: {offenders}"


def test_refusals_are_mapped_to_messages_in_one_place() -> None:
    """Listeners turn errors into sentences through bot.errors.refusal_of, never by catching kinds themselves."""
    listeners = [path for path in CODE if _relative(path).startswith("handlers/")]
    offenders = [
        f"{_relative(path)}:{node.lineno}"
        for path in listeners
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ExceptHandler)
        and isinstance(node.type, ast.Name)
        and node.type.id in ("UserFacingError", "ProviderError", "NotFound", "NotAllowed", "InvalidInput")
    ]
    assert not offenders, f"use bot.errors.refusal_of: {offenders}"
