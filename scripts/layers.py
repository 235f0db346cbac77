#!/usr/bin/env python3
"""Check paywarden's layer contract: dependencies point inward only.

    entrypoints  api, cli, web, mcp, worker, agent, devices   -> anything in paywarden
    services     services                                     -> adapters, domains, kernel
    adapters     store, adapters, payments.rails              -> adapters, domains, kernel
    domains      authorization, commerce, payments, trust     -> domains, kernel, pure libraries
    kernel       kernel                                       -> pure stdlib only
    sdk          sdk (the light client, no server deps)       -> sdk, kernel, trust.keys,
                                                                  trust.signatures

The kernel and the domains must also stay deterministic: no I/O, clock, environment or
randomness (see FORBIDDEN_IMPORTS and FORBIDDEN_NAMES), so they can be tested and replayed.

Usage: python scripts/layers.py [PACKAGE_DIR]        (default: src/paywarden of this repo)

Modules are parsed with ``ast``, never imported. Every import is checked, including those under
``if TYPE_CHECKING:`` and inside functions: strict is simpler than clever. Violations print as
``path:line: message`` and the exit status is 1; a clean tree exits 0. Stdlib only, Python 3.11.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "paywarden"
DEFAULT_TREE = Path(__file__).resolve().parent.parent / "src" / PACKAGE

# ---------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------

KERNEL = "kernel"
DOMAINS = "domains"
ADAPTERS = "adapters"
SERVICES = "services"
ENTRYPOINTS = "entrypoints"
SDK = "sdk"

# The layer of each part of the package. The longest matching prefix wins: that is how
# paywarden.payments.rails (adapters that talk to payment rails) leaves the payments domain.
# A module under no prefix here is itself a violation, so a new package must pick a layer.
LAYER_OF: dict[str, str] = {
    "paywarden.kernel": KERNEL,
    "paywarden.authorization": DOMAINS,
    "paywarden.commerce": DOMAINS,
    "paywarden.payments": DOMAINS,
    "paywarden.trust": DOMAINS,
    "paywarden.services": SERVICES,
    "paywarden.store": ADAPTERS,
    "paywarden.adapters": ADAPTERS,
    "paywarden.payments.rails": ADAPTERS,
    "paywarden.api": ENTRYPOINTS,
    "paywarden.cli": ENTRYPOINTS,
    "paywarden.web": ENTRYPOINTS,
    "paywarden.mcp": ENTRYPOINTS,
    "paywarden.worker": ENTRYPOINTS,
    "paywarden.agent": ENTRYPOINTS,
    "paywarden.devices": ENTRYPOINTS,
    "paywarden.bench": ENTRYPOINTS,
    "paywarden.__main__": ENTRYPOINTS,
    "paywarden.config": ENTRYPOINTS,
    "paywarden.sdk": SDK,
}

ALL_LAYERS = frozenset({KERNEL, DOMAINS, ADAPTERS, SERVICES, ENTRYPOINTS, SDK})

# Which paywarden layers each layer may import. The SDK is installed without the server, so it
# may lean on nothing but the kernel, and the two pure trust modules that sign requests (below).
MAY_IMPORT: dict[str, frozenset[str]] = {
    KERNEL: frozenset({KERNEL}),
    DOMAINS: frozenset({KERNEL, DOMAINS}),
    ADAPTERS: frozenset({KERNEL, DOMAINS, ADAPTERS}),
    SERVICES: frozenset({KERNEL, DOMAINS, ADAPTERS, SERVICES}),
    ENTRYPOINTS: ALL_LAYERS,
    SDK: frozenset({KERNEL, SDK}),
}

# Stdlib modules with no I/O, clock, environment, process or global-state side: the only stdlib
# the kernel and the domains may use. Left out on purpose, among others: os, sys, io, pathlib,
# time, random, secrets, logging, warnings, locale (environment), zoneinfo (reads host files),
# contextvars (ambient state), importlib (dynamic imports).
PURE_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "base64",
        "binascii",
        "bisect",
        "calendar",
        "collections",
        "contextlib",
        "copy",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "graphlib",
        "hashlib",
        "heapq",
        "hmac",
        "ipaddress",
        "itertools",
        "json",
        "math",
        "numbers",
        "operator",
        "re",
        "string",
        "struct",
        "textwrap",
        "types",
        "typing",
        "unicodedata",
        "urllib.parse",
        "uuid",
        "weakref",
        "zlib",
    }
)

# The kernel loads the ISO 4217 table shipped inside the package: a read of package data, not of
# the host, so it is allowed there (and only there).
KERNEL_ONLY_STDLIB = frozenset({"importlib.resources"})

# Third-party libraries the domains may use: pure computation (crypto, canonical JSON, JOSE,
# structured HTTP fields), no I/O.
DOMAIN_THIRD_PARTY = frozenset({"cryptography", "nacl", "rfc8785", "joserfc", "http_sf"})

# The SDK ships in the base install; it may use only the base dependencies in pyproject.toml
# ([project].dependencies). Keep the two in step.
SDK_THIRD_PARTY = frozenset({"httpx", "pydantic", "typer", "rich", "cryptography", "nacl"})

# The domain modules the SDK may import: they use only the kernel and cryptography/nacl (both in
# the base install), so the SDK signs RFC 9421 requests with the code the server verifies with.
SDK_DOMAIN_MODULES = ("paywarden.trust.keys", "paywarden.trust.signatures")

ANYTHING = None  # no restriction

STDLIB_ALLOWED: dict[str, frozenset[str] | None] = {
    KERNEL: PURE_STDLIB | KERNEL_ONLY_STDLIB,
    DOMAINS: PURE_STDLIB,
    ADAPTERS: ANYTHING,
    SERVICES: ANYTHING,
    ENTRYPOINTS: ANYTHING,
    SDK: ANYTHING,
}

THIRD_PARTY_ALLOWED: dict[str, frozenset[str] | None] = {
    KERNEL: frozenset(),
    DOMAINS: DOMAIN_THIRD_PARTY,
    ADAPTERS: ANYTHING,
    SERVICES: ANYTHING,
    ENTRYPOINTS: ANYTHING,
    SDK: SDK_THIRD_PARTY,
}

# Layers that must stay deterministic; the two tables below apply to them only.
PURE_LAYERS = frozenset({KERNEL, DOMAINS})

# Named explicitly (most are also outside the allow-lists above) so that the message says why,
# and so that widening an allow-list can never let one of these in.
FORBIDDEN_IMPORTS = frozenset(
    {
        "os",
        "sys",
        "logging",
        "structlog",
        "random",
        "socket",
        "subprocess",
        "sqlite3",
        "sqlalchemy",
        "psycopg",
        "asyncpg",
        "fastapi",
        "starlette",
        "httpx",
        "requests",
        "openai",
        "mcp",
        "jinja2",
        "threading",
        "asyncio",
    }
)

# Names that read the clock, the environment or a random source, wherever they are spelled:
# `import time; time.time()`, `from time import time`, `from datetime import datetime as dt;
# dt.now()`. A pattern covers everything beneath it (`secrets` covers `secrets.token_hex`).
CLOCK = "reads the clock"
FORBIDDEN_NAMES: dict[str, str] = {
    "datetime.datetime.now": CLOCK,
    "datetime.datetime.utcnow": CLOCK,
    "datetime.datetime.today": CLOCK,
    "datetime.date.today": CLOCK,
    "time.time": CLOCK,
    "time.time_ns": CLOCK,
    "time.monotonic": CLOCK,
    "time.monotonic_ns": CLOCK,
    "time.perf_counter": CLOCK,
    "time.perf_counter_ns": CLOCK,
    "os.environ": "reads the environment",
    "os.getenv": "reads the environment",
    "secrets": "draws randomness",
    "uuid.uuid1": "reads the clock and the host's MAC address",
    "uuid.uuid4": "draws randomness",
}

# Builtins that do I/O or import behind this checker's back.
FORBIDDEN_BUILTINS: dict[str, str] = {
    "open": "does file I/O",
    "input": "reads the terminal",
    "__import__": "imports dynamically, out of this checker's sight",
}

# ---------------------------------------------------------------------------------------------
# The machinery
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Import:
    """One imported name. `from a import b, c` gives two; `import a.b` gives one."""

    line: int
    module: str  # absolute, or still relative (leading dots) if it climbs above the package
    name: str | None = None  # the `b` of `from a import b`; None for `import a` and `*`
    asname: str | None = None
    star: bool = False  # `from a import *`: checked as `a`, binds no name we can follow

    @property
    def target(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module

    @property
    def candidates(self) -> tuple[str, ...]:
        # `from a import b` loads either the submodule a.b or the attribute b of a; a rule
        # matching either one applies (so `from importlib import resources` is importlib.resources).
        return (self.target, self.module) if self.name else (self.module,)

    def binding(self) -> tuple[str, str] | None:
        """The local name this import binds and the absolute name it stands for."""
        if self.star:
            return None
        if self.name is not None:
            return self.asname or self.name, self.target
        if self.asname is not None:
            return self.asname, self.module
        head = self.module.partition(".")[0]  # `import a.b.c` binds `a`
        return head, head


@dataclass(frozen=True, slots=True, order=True)
class Violation:
    path: Path
    line: int
    message: str


def within(name: str, prefix: str) -> bool:
    """`name` is `prefix` or lives under it; dotted boundaries only, so `osx` is not in `os`."""
    return name == prefix or name.startswith(prefix + ".")


def first_within(names: Iterable[str], prefixes: Iterable[str]) -> str | None:
    """The first of `prefixes` that contains one of `names`, if any."""
    names = tuple(names)
    return next((p for p in prefixes if any(within(n, p) for n in names)), None)


def layer_of(module: str) -> str | None:
    prefixes = [prefix for prefix in LAYER_OF if within(module, prefix)]
    if prefixes:
        return LAYER_OF[max(prefixes, key=len)]
    # The root __init__ runs on every `import paywarden.<anything>`, SDK included, so it is held
    # to the kernel's rules, and anyone may import it.
    return KERNEL if module == PACKAGE else None


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of the file at `path` and whether it is a package's __init__."""
    parts = path.relative_to(root).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts)), is_package


def absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a `from` statement names, made absolute: the rules speak absolute names."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    climb = node.level - 1
    if climb >= len(package):  # above the top of the tree: leave it relative, it gets reported
        return "." * node.level + (node.module or "")
    base = package[: len(package) - climb]
    return ".".join([*base, node.module] if node.module else base)


def imports_in(tree: ast.Module, module: str, is_package: bool) -> Iterator[Import]:
    for node in ast.walk(tree):  # walk, not body: imports in functions and TYPE_CHECKING count
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name, asname=alias.asname)
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node, module, is_package)
            for alias in node.names:
                star = alias.name == "*"
                yield Import(node.lineno, source, None if star else alias.name, alias.asname, star)


def check_import(layer: str, imp: Import) -> str | None:
    if imp.module.startswith("."):
        return f"relative import {imp.target} climbs above the {PACKAGE} package"
    if layer in PURE_LAYERS:
        if banned := first_within(imp.candidates, FORBIDDEN_IMPORTS):
            return (
                f"{layer} must not import {imp.target}: {banned} is forbidden in the kernel and"
                " domains (I/O, processes, threads, logging, randomness, frameworks)"
            )
        if pattern := first_within(imp.candidates, FORBIDDEN_NAMES):
            return f"{layer} must not import {imp.target}: it {FORBIDDEN_NAMES[pattern]}"
    top = imp.module.partition(".")[0]
    if top == PACKAGE:
        return check_internal(layer, imp)
    if top in sys.stdlib_module_names:
        allowed = STDLIB_ALLOWED[layer]
        if allowed is ANYTHING or first_within(imp.candidates, allowed):
            return None
        return f"{layer} must not import {imp.target}: not a pure stdlib module (see PURE_STDLIB)"
    allowed = THIRD_PARTY_ALLOWED[layer]
    if allowed is ANYTHING or first_within(imp.candidates, allowed):
        return None
    listing = ", ".join(sorted(allowed)) or "none"
    return f"{layer} must not import {imp.target}: third-party libraries allowed here: {listing}"


def check_internal(layer: str, imp: Import) -> str | None:
    # `from paywarden.payments import rails` is the rails adapter, not the payments domain:
    # classify the imported name first, then the module it comes from.
    target_layer = layer_of(imp.target) or layer_of(imp.module)
    if layer == SDK and first_within(imp.candidates, SDK_DOMAIN_MODULES):
        return None
    if target_layer is None:
        return f"{layer} imports {imp.target}, which belongs to no layer (see LAYER_OF)"
    if target_layer in MAY_IMPORT[layer]:
        return None
    allowed = ", ".join(sorted(MAY_IMPORT[layer]))
    return (
        f"{layer} must not import {imp.target} ({target_layer}); {layer} may import only: {allowed}"
    )


def dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a Name or a chain of Attributes on one; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def impure_uses(tree: ast.Module, aliases: dict[str, str], layer: str) -> Iterator[tuple[int, str]]:
    """Uses of FORBIDDEN_NAMES and FORBIDDEN_BUILTINS, resolved through the file's imports."""
    for node in ast.walk(tree):
        spelled = dotted(node) if isinstance(node, ast.Name | ast.Attribute) else None
        if spelled is None:
            continue
        head = spelled.partition(".")[0]
        if head in aliases:
            message = forbidden_use(spelled, aliases[head], layer)
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_BUILTINS:
            message = f"{layer} must not call {node.id}(): it {FORBIDDEN_BUILTINS[node.id]}"
        else:
            message = None  # a local name: not ours to judge
        if message:
            yield node.lineno, message


def forbidden_use(spelled: str, bound_to: str, layer: str) -> str | None:
    """The message for `spelled` (its head imported as `bound_to`) if it is a FORBIDDEN_NAME."""
    if first_within([bound_to], FORBIDDEN_NAMES):
        return None  # the import itself (`from time import time`) was already reported
    parts = spelled.split(".")
    pattern = first_within([".".join([bound_to, *parts[1:]])], FORBIDDEN_NAMES)
    if pattern is None:
        return None
    # Show only as much of the spelling as the pattern covers, so that `os.environ.get` and its
    # inner node `os.environ` give the same message and are reported once.
    shown = ".".join(parts[: 1 + pattern.count(".") - bound_to.count(".")])
    spelled_as = "" if shown == pattern else f" ({pattern})"
    return f"{layer} must not use {shown}{spelled_as}: it {FORBIDDEN_NAMES[pattern]}"


def _lazy_lines(tree: ast.Module) -> set[int]:
    """Lines of the root's module-level ``__getattr__``: they run on first attribute access,
    not on ``import paywarden``, so the root may import the SDK there and nowhere else."""
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _is_sdk(imp: Import) -> bool:
    return within(imp.target, f"{PACKAGE}.sdk") or within(imp.module, f"{PACKAGE}.sdk")


def check_file(path: Path, root: Path) -> list[Violation]:
    module, is_package = module_name(path, root)
    layer = layer_of(module)
    if layer is None:
        return [Violation(path, 1, f"{module} belongs to no layer: add it to LAYER_OF")]
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as error:
        return [Violation(path, error.lineno or 1, f"cannot parse: {error.msg}")]
    imports = list(imports_in(tree, module, is_package))
    if module == PACKAGE:  # `paywarden.Client`: the root may name the SDK, lazily (PEP 562)
        lazy = _lazy_lines(tree)
        imports = [i for i in imports if not (i.line in lazy and _is_sdk(i))]
    # A set: `os.environ.get` holds both `os.environ` and `os.environ.get`; report the line once.
    found = {Violation(path, i.line, m) for i in imports if (m := check_import(layer, i))}
    if layer in PURE_LAYERS:
        aliases = dict(b for i in imports if (b := i.binding()))
        found |= {Violation(path, line, m) for line, m in impure_uses(tree, aliases, layer)}
    return sorted(found)


def shown(path: Path) -> str:
    """The path relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check paywarden's layer contract.")
    parser.add_argument(
        "tree",
        nargs="?",
        type=Path,
        default=DEFAULT_TREE,
        help="the paywarden package directory (default: src/paywarden of this repo)",
    )
    root: Path = parser.parse_args(argv).tree
    if not root.is_dir():
        print(f"layers: not a directory: {root}", file=sys.stderr)
        return 2
    files = sorted(root.rglob("*.py"))
    violations = [violation for path in files for violation in check_file(path, root)]
    for violation in violations:
        print(f"{shown(violation.path)}:{violation.line}: {violation.message}")
    if violations:
        print(f"layers: {len(violations)} violation(s) in {len(files)} files", file=sys.stderr)
        return 1
    print(f"layers: ok ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
