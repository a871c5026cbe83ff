"""How far the restore's config travels: from ``run_restore``, follow every call that
receives the config (or an object carrying it), and count the stops, the modules they are
in, and the returns to a module the walk had already left (issue 24).

Measured with this script (``--src`` pointed at an export of main's ``image/src``):

    rule                         main (restore.py)           restorepkg (restore/ package)
    carriers only (default)      94 stops, 1 module, 0 ret.  44 stops, 10 modules, 5 returns
    --values (config.x, ctx.x)   135 stops, 10 modules, 26   64 stops, 18 modules, 13 returns

The issue counted 50 stops in 11 modules with 39 returns by hand; its rule is not written
down. Read literally (only the config and objects holding it), main's config never leaves
restore.py, so there is nothing to halve; ``--values`` (a value read from the config or a
carrier, passed on, counts too) is the rule that reaches the modules the issue names.

How it counts, read from the source with ``ast`` (nothing is imported or run):

* A *carrier* is a value that holds the config: a parameter annotated with a carrier type,
  ``self`` in a carrier type's method, a local assigned from a carrier expression (``config =
  ctx.config``; tuples element by element) or from a call whose return annotation is a carrier
  type. The carrier types are ``RestoreConfig`` and every class of the package with a field
  annotated with a carrier type (``RestoreContext``), found to a fixed point. With
  ``--values``, an attribute read from a carrier at the call (``config.identity_file``,
  ``ctx.plan``) counts as well; a local assigned from one does not.
* A *stop* is a call, in a function already reached, that passes a carrier (as an argument,
  or as the object of a method call: ``ctx.plan.steps()`` passes ``ctx.plan``) to a function
  or method defined in the package. Names are resolved through the module's imports,
  re-exports included; a method through the annotated type of the object it is called on.
  Calls of classes (constructors) are not stops.
* The walk is depth-first in source order (line, then column) and follows every call: each
  stop is recorded, then the callee is walked, every time it is called (a function already
  on the call stack is recorded but not walked again, so recursion ends). Both arms of an
  ``if`` are walked (a dry run's and a restore's calls both count).
* A *return* is a stop in a module that is not the current one (the module of the function
  making the call) but was visited before. ``modules`` counts the distinct modules visited,
  ``run_restore``'s included. ``--trail`` prints every stop, a return marked ``R``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "agent_bom_backup"
ROOT_TYPE = "RestoreConfig"


@dataclass
class Module:
    name: str
    tree: ast.Module
    is_package: bool
    #: name -> (module, name) it was imported from, or (module, "") for a module import
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    module: str
    qualname: str  # "f" or "Class.f"


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def load(src: Path) -> dict[str, Module]:
    modules = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, ast.parse(path.read_text()), is_package)
    for module in modules.values():
        for node in module.tree.body:
            if isinstance(node, ast.ImportFrom):
                base = _absolute(module, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    module.imports[alias.asname or alias.name] = (sub, "") if sub in modules else (base, alias.name)
            elif isinstance(node, ast.FunctionDef):
                module.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                module.classes[node.name] = node
    return modules


class Index:
    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self.carriers = self._carrier_types()

    def lookup(self, module: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """(module, name) where ``name`` as seen from ``module`` is defined (imports followed)."""
        mod = self.modules.get(module)
        if mod is None or depth > 10:
            return None
        if name in mod.functions or name in mod.classes:
            return module, name
        if name in mod.imports:
            source, original = mod.imports[name]
            return (source, "") if not original else self.lookup(source, original, depth + 1)
        return None

    def _carrier_types(self) -> set[str]:
        carriers = {ROOT_TYPE}
        while True:
            found = {cls.name for mod in self.modules.values() for cls in mod.classes.values()
                     if any(isinstance(item, ast.AnnAssign) and _type_name(item.annotation) in carriers
                            for item in cls.body)}
            if found <= carriers:
                return carriers
            carriers |= found

    def field_type(self, class_name: str, attribute: str) -> str | None:
        for mod in self.modules.values():
            cls = mod.classes.get(class_name)
            for item in cls.body if cls else []:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) \
                        and item.target.id == attribute:
                    return _type_name(item.annotation)
        return None


def _type_name(annotation: ast.expr | None) -> str | None:
    """The class an annotation names (``X``, ``X | None``, ``"X"``)."""
    if annotation is None:
        return None
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return _type_name(ast.parse(annotation.value, mode="eval").body)
    if isinstance(annotation, ast.BinOp):
        return _type_name(annotation.left) or _type_name(annotation.right)
    if isinstance(annotation, ast.Name):
        return annotation.id
    if isinstance(annotation, ast.Attribute):
        return annotation.attr
    return None


@dataclass(frozen=True)
class Stop:
    caller: str  # the module the walk is in when it makes the call
    module: str
    qualname: str


class Walk:
    def __init__(self, index: Index, values: bool = False) -> None:
        self.index = index
        #: also count values read from a carrier (``config.identity_file``, ``ctx.storage``)
        self.values = values
        self.stops: list[Stop] = []

    def function(self, target: Target) -> tuple[ast.FunctionDef, str | None] | None:
        mod = self.index.modules[target.module]
        if "." in target.qualname:
            class_name, method = target.qualname.split(".")
            cls = mod.classes[class_name]
            node = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method), None)
            return (node, class_name) if node else None
        return mod.functions[target.qualname], None

    def walk(self, target: Target, stack: tuple[Target, ...] = ()) -> None:
        found = self.function(target)
        if found is None or target in stack:
            return
        node, own_class = found
        types = self._local_types(target.module, node, own_class)
        calls = sorted((n for n in ast.walk(node) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
        for call in calls:
            callee = self._callee(target.module, call, types)
            if callee is None or not self._passes_carrier(call, types):
                continue
            self.stops.append(Stop(target.module, callee.module, callee.qualname))
            self.walk(callee, stack + (target,))

    def _local_types(self, module: str, node: ast.FunctionDef, own_class: str | None) -> dict[str, str]:
        """variable -> its class, where known: parameters by annotation, ``self``, and locals
        assigned from an attribute of a typed variable or from a call with a return annotation."""
        types: dict[str, str] = {}
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        for arg in args:
            if (name := _type_name(arg.annotation)) is not None:
                types[arg.arg] = name
        if own_class is not None and args:
            types[args[0].arg] = own_class
        for sub in sorted((n for n in ast.walk(node) if isinstance(n, ast.Assign)), key=lambda n: n.lineno):
            for target in sub.targets:
                pairs = (list(zip(target.elts, sub.value.elts))
                         if isinstance(target, ast.Tuple) and isinstance(sub.value, ast.Tuple)
                         else [(target, sub.value)])
                for name, value in pairs:
                    if isinstance(name, ast.Name) and (kind := self._type_of(module, value, types)):
                        types[name.id] = kind
        return types

    def _type_of(self, module: str, value: ast.expr, types: dict[str, str]) -> str | None:
        if isinstance(value, ast.Name):
            return types.get(value.id)
        if isinstance(value, ast.Attribute) and (owner := self._type_of(module, value.value, types)):
            return self.index.field_type(owner, value.attr)
        if isinstance(value, ast.Call) and (callee := self._callee(module, value, types)):
            found = self.function(callee)
            return _type_name(found[0].returns) if found else None
        return None

    def _callee(self, module: str, call: ast.Call, types: dict[str, str]) -> Target | None:
        func = call.func
        if isinstance(func, ast.Name):
            where = self.index.lookup(module, func.id)
            return Target(*where) if where and where[1] and where[1] in self.index.modules[where[0]].functions \
                else None
        if not isinstance(func, ast.Attribute):
            return None
        if isinstance(func.value, ast.Name) and func.value.id not in types:
            where = self.index.lookup(module, func.value.id)  # a module imported as a name: mod.f(...)
            if where and not where[1] and func.attr in self.index.modules[where[0]].functions:
                return Target(where[0], func.attr)
            return None
        owner = self._type_of(module, func.value, types)
        for mod in self.index.modules.values():
            cls = mod.classes.get(owner or "")
            if cls and any(isinstance(n, ast.FunctionDef) and n.name == func.attr for n in cls.body):
                return Target(mod.name, f"{owner}.{func.attr}")
        return None

    def _passes_carrier(self, call: ast.Call, types: dict[str, str]) -> bool:
        carriers = self.index.carriers
        values = list(call.args) + [k.value for k in call.keywords]
        if isinstance(call.func, ast.Attribute):
            values.append(call.func.value)
        return any(self._carries(v, types, carriers) for v in values)

    def _carries(self, value: ast.expr, types: dict[str, str], carriers: set[str]) -> bool:
        if isinstance(value, ast.Starred):
            value = value.value
        if isinstance(value, ast.Name):
            return types.get(value.id) in carriers
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
            owner = types.get(value.value.id)
            if self.values and owner in carriers:
                return True
            return owner is not None and self.index.field_type(owner, value.attr) in carriers
        return False


@dataclass
class Count:
    stops: list[Stop]
    modules: int
    returns: list[Stop]


def measure(src: Path, values: bool = False) -> Count:
    index = Index(load(src))
    start = index.lookup(f"{PACKAGE}.restore", "run_restore")
    if start is None:
        raise SystemExit(f"no run_restore in {src / PACKAGE / 'restore'}")
    walk = Walk(index, values)
    walk.walk(Target(*start))
    visited = {start[0]}
    returns = []
    for stop in walk.stops:
        if stop.module != stop.caller and stop.module in visited:
            returns.append(stop)
        visited.add(stop.module)
    return Count(walk.stops, len(visited), returns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python scripts/callflow.py --src /tmp/main/image/src --trail")
    parser.add_argument("--src", type=Path, default=REPO / "image" / "src",
                        help=f"the directory holding the {PACKAGE} package (default: this checkout's)")
    parser.add_argument("--values", action="store_true",
                        help="also follow values read from the config or its carriers (config.x, ctx.x)")
    parser.add_argument("--trail", action="store_true", help="print every stop, in walk order (R: a return)")
    args = parser.parse_args(argv)
    count = measure(args.src, args.values)
    if args.trail:
        returns = {id(stop) for stop in count.returns}
        for stop in count.stops:
            mark = "R" if id(stop) in returns else " "
            print(f"{mark} {stop.caller.removeprefix(PACKAGE + '.')} -> "
                  f"{stop.module.removeprefix(PACKAGE + '.')}.{stop.qualname}")
    print(f"stops {len(count.stops)}, modules {count.modules}, returns {len(count.returns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
