"""A MONAI bundle config's values, resolved without executing anything.

MONAI's ConfigParser evaluates ``$…`` strings as Python and instantiates ``_target_`` classes: code from a
file. Here a ``$`` expression is only parsed (`ast`) and accepted when it is one of a few known idioms:

- ``$@bundle_root + '…'`` (a path inside the bundle; kept as text, never opened);
- ``$torch.device(…)`` (the device idiom; LesionDetect chooses the device itself);
- ``$a if @flag else b`` with literal ``a`` and ``b`` (and ``not @flag``), resolved from the flag's literal;
- literal lists, numbers, text, booleans and ``None``.

``@key`` and ``@key#sub#0`` references are followed (cycles refused). Everything else raises
`BundleConfigError` naming the key.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelBundleError

REFERENCE = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|@([A-Za-z_]\w*(?:#\w+)*)""")


class _DeviceIdiom:
    """What ``$torch.device(…)`` resolves to: a marker, since the device is LesionDetect's choice."""

    def __repr__(self) -> str:
        return "<device>"


DEVICE_IDIOM = _DeviceIdiom()
MAX_DEPTH = 64


class BundleConfigError(ModelBundleError):
    """A MONAI bundle config uses something outside the supported declarative subset."""


class BundlePath(str):
    """A path relative to the bundle root, from ``$@bundle_root + '…'`` (never opened by the importer)."""


@dataclass(frozen=True)
class Call:
    """A recognised call, recorded and never made: ``name`` is dotted (``monai.x.f``) or ``@key.method``."""

    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)


class Resolver:
    """Follows references and resolves the accepted idioms of one parsed config (a JSON/YAML mapping).

    ``calls``: the names of calls that a caller recognises as a known recipe (e.g. the detection bundle's
    backbone); such a call with literal or reference arguments is returned as a `Call` record.
    """

    def __init__(self, config: dict[str, Any], calls: frozenset[str] = frozenset()):
        self.config = config
        self.calls = calls
        self._active: list[str] = []

    def get(self, path: str) -> Any:
        """The resolved value at ``path`` (``key#sub#0``), references and idioms resolved recursively."""
        if path in self._active:
            raise BundleConfigError(f"{path}: circular reference ({' -> '.join([*self._active, path])})")
        if len(self._active) > MAX_DEPTH:
            raise BundleConfigError(f"{path}: references nested too deeply")
        self._active.append(path)
        try:
            return self.value(self.raw(path), path)
        finally:
            self._active.pop()

    def raw(self, path: str) -> Any:
        """The unresolved value at ``path``; a missing key is an error naming it."""
        node: Any = self.config
        for part in path.split("#"):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise BundleConfigError(f"{path}: no such key in the config")
        return node

    def has(self, path: str) -> bool:
        try:
            self.raw(path)
        except BundleConfigError:
            return False
        return True

    def value(self, value: Any, where: str) -> Any:
        """``value`` with its references and idioms resolved; dicts keep ``_target_`` as resolved text."""
        if isinstance(value, dict):
            return {key: self.value(item, f"{where}#{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, f"{where}#{index}") for index, item in enumerate(value)]
        if isinstance(value, str) and value.startswith("@"):
            return self.get(value[1:])
        if isinstance(value, str) and value.startswith("$"):
            return self.expression(value[1:], where)
        return value

    def expression(self, text: str, where: str) -> Any:
        """A ``$`` expression that is one of the accepted idioms, resolved; anything else is refused."""
        references: dict[str, str] = {}

        def placeholder(match: re.Match) -> str:
            if match.group(1):  # a string literal: left as it is
                return match.group(1)
            name = f"_ref{len(references)}"
            references[name] = match.group(2)
            return name

        try:
            tree = ast.parse(REFERENCE.sub(placeholder, text).strip(), mode="eval").body
        except SyntaxError:
            raise BundleConfigError(f"{where}: expression {_short(text)!r} is not valid Python syntax") from None
        return _Evaluator(self, references, where, text).evaluate(tree)


class _Evaluator:
    """Interprets the accepted expression shapes of one ``$`` string (see the module docstring)."""

    def __init__(self, resolver: Resolver, references: dict[str, str], where: str, text: str):
        self.resolver, self.references, self.where, self.text = resolver, references, where, text

    def refuse(self) -> BundleConfigError:
        return BundleConfigError(
            f"{self.where}: expression {_short(self.text)!r} is not supported (LesionDetect never executes config "
            "code; accepted: @bundle_root + '...', torch.device(...), literals, 'a if @flag else b')")

    def evaluate(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name) and node.id in self.references:
            return self.resolver.get(self.references[node.id])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and self._is_bundle_path(node):
            return BundlePath(self._path_text(node))
        if self._is_device_call(node):
            return DEVICE_IDIOM
        if isinstance(node, ast.IfExp):
            flag = self._flag(node.test)
            return self.literal(node.body if flag else node.orelse)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self._flag(node.operand)
        if isinstance(node, ast.Call) and self._call_name(node.func) in self.resolver.calls:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                raise self.refuse()
            return Call(self._call_name(node.func), [self.argument(a) for a in node.args],
                        {k.arg: self.argument(k.value) for k in node.keywords})
        return self.literal(node)

    def argument(self, node: ast.AST) -> Any:
        """An argument of a recognised call: a reference, a literal or another recognised call."""
        if isinstance(node, ast.Name) and node.id in self.references:
            return self.resolver.get(self.references[node.id])
        if isinstance(node, ast.Call):
            return self.evaluate(node)
        return self.literal(node)

    def _call_name(self, func: ast.AST) -> str | None:
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id in self.references):
            return f"@{self.references[func.value.id]}.{func.attr}"
        return dotted_name(func)

    def literal(self, node: ast.AST) -> Any:
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise self.refuse() from None

    def _flag(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name) and node.id in self.references:
            value = self.resolver.get(self.references[node.id])
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self._flag(node.operand)
        else:
            value = self.literal(node)
        if not isinstance(value, (bool, int, float, str)) or value is None:
            raise BundleConfigError(f"{self.where}: condition of {_short(self.text)!r} is not a literal flag")
        return bool(value)

    def _is_bundle_path(self, node: ast.AST) -> bool:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self._is_bundle_path(node.left) and self._is_text_part(node.right)
        return isinstance(node, ast.Name) and self.references.get(node.id) == "bundle_root"

    def _is_text_part(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        if isinstance(node, ast.Name) and node.id in self.references:
            return isinstance(self.resolver.get(self.references[node.id]), str)
        return False

    def _path_text(self, node: ast.AST) -> str:
        if isinstance(node, ast.BinOp):
            return self._path_text(node.left) + self._path_text(node.right)
        if isinstance(node, ast.Constant):
            return node.value
        if self.references[node.id] == "bundle_root":
            return ""
        return str(self.resolver.get(self.references[node.id]))

    @staticmethod
    def _is_device_call(node: ast.AST) -> bool:
        """``torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')`` or ``torch.device('cpu')``."""
        if not (isinstance(node, ast.Call) and dotted_name(node.func) == "torch.device" and not node.keywords
                and len(node.args) == 1):
            return False
        argument = node.args[0]
        if isinstance(argument, ast.Constant):
            return isinstance(argument.value, str)
        return (isinstance(argument, ast.IfExp) and isinstance(argument.body, ast.Constant)
                and isinstance(argument.orelse, ast.Constant) and isinstance(argument.test, ast.Call)
                and dotted_name(argument.test.func) == "torch.cuda.is_available" and not argument.test.args)


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
