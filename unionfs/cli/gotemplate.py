"""The subset of Go's text/template that ``--format`` strings use, as podman runs them:
actions with trim markers and comments, ``|`` pipelines, fields ``.A.B`` of ``.``, ``$``,
``$var`` and ``(pipeline)``, literals, ``if``/``else if``/``else``, ``range`` (``$i, $v
:=``, ``else``), ``with``. Values and functions are ``govalues``'. It only evaluates: no
I/O, nothing but the values it is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from unionfs.cli.govalues import (
    FUNCS,
    MISSING,
    GoMap,
    Missing,
    TemplateError,
    go_str,
    truthy,
    type_name,
)


# -- the parse tree ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    base: str  # "." (dot), "$" (the root) or "$name"
    chain: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Literal:
    value: object


@dataclass(frozen=True, slots=True)
class Func:
    name: str


@dataclass(frozen=True, slots=True)
class Sub:
    pipe: Pipe
    chain: tuple[str, ...]


Operand = Field | Literal | Func | Sub


@dataclass(frozen=True, slots=True)
class Pipe:
    decls: tuple[str, ...]
    commands: tuple[tuple[Operand, ...], ...]


@dataclass(slots=True)
class Block:
    kind: str  # "if", "range", "with"
    pipe: Pipe
    body: list[Node] = field(default_factory=list)
    alt: list[Node] = field(default_factory=list)


Node = str | Pipe | Block

_TOKEN = re.compile(r"""
    \s+ | (?P<str>"(?:[^"\\]|\\.)*") | (?P<raw>`[^`]*`) | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<field>(?:\$[A-Za-z0-9_]*)?(?:\.[A-Za-z0-9_]+)+|\$[A-Za-z0-9_]*|\.)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*) | (?P<op>:=|[|(),=])
""", re.VERBOSE)  # fmt: skip
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"unexpected {text[pos:pos + 10]!r} in {{{{{text}}}}}")
        pos = m.end()
        if m.lastgroup is not None:
            found.append((m.lastgroup, m.group(m.lastgroup)))
    return found


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], source: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.source = source

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise TemplateError(f"unexpected end of {{{{{self.source}}}}}")
        self.i += 1
        return token

    def pipe(self, closing: str | None = None) -> Pipe:
        decls: list[str] = []
        j = self.i
        while j < len(self.tokens) and self.tokens[j][0] == "field" and \
                self.tokens[j][1].startswith("$") and "." not in self.tokens[j][1]:  # fmt: skip
            decls.append(self.tokens[j][1])
            j += 1
            if j < len(self.tokens) and self.tokens[j] == ("op", ","):
                j += 1
                continue
            break
        if decls and j < len(self.tokens) and self.tokens[j] == ("op", ":="):
            self.i = j + 1
        else:
            decls = []
        commands: list[tuple[Operand, ...]] = []
        current: list[Operand] = []
        while (token := self.peek()) is not None and token != ("op", closing or ""):
            self.take()
            kind, text = token
            if token == ("op", "|"):
                if not current:
                    raise TemplateError(f"missing command before | in {{{{{self.source}}}}}")
                commands.append(tuple(current))
                current = []
            elif token == ("op", "("):
                inner = self.pipe(")")
                self.take()
                chain: tuple[str, ...] = ()
                nxt = self.peek()
                if nxt is not None and nxt[0] == "field" and nxt[1].startswith("."):
                    self.take()
                    chain = tuple(nxt[1].split(".")[1:])
                current.append(Sub(inner, chain))
            elif kind == "field":
                current.append(_field(text))
            elif kind in ("str", "raw"):
                current.append(Literal(json.loads(text) if kind == "str" else text[1:-1]))
            elif kind == "num":
                current.append(Literal(float(text) if "." in text else int(text)))
            elif kind == "word" and text in ("true", "false", "nil"):
                current.append(Literal({"true": True, "false": False, "nil": None}[text]))
            elif kind == "word":
                if text not in FUNCS:
                    raise TemplateError(f'function "{text}" not defined')
                current.append(Func(text))
            else:
                raise TemplateError(f"unexpected {text!r} in {{{{{self.source}}}}}")
        if current:
            commands.append(tuple(current))
        if not commands:
            raise TemplateError(f"missing value in {{{{{self.source}}}}}")
        return Pipe(tuple(decls), tuple(commands))


def _field(text: str) -> Field:
    if text == ".":
        return Field(".", ())
    if text.startswith("$"):
        base, _, rest = text.partition(".")
        return Field(base, tuple(rest.split(".")) if rest else ())
    return Field(".", tuple(text.split(".")[1:]))


def _items(source: str) -> list[tuple[bool, str]]:
    """(is_action, text) pieces of *source*, with the trim markers applied."""
    items: list[tuple[bool, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            items.append((False, text))
        pos = m.end()
        trim_next = bool(m.group(3))
        body = m.group(2).strip()
        if not body.startswith("/*"):
            items.append((True, body))
    text = source[pos:].lstrip() if trim_next else source[pos:]
    if text:
        items.append((False, text))
    return items


def _pipe_of(body: str) -> Pipe:
    return _Parser(_tokens(body), body).pipe()


def _list(items: list[tuple[bool, str]], i: int) -> tuple[list[Node], int, str | None]:
    """Nodes from *i* up to an ``else``/``end`` action (returned) or the end (None)."""
    nodes: list[Node] = []
    while i < len(items):
        is_action, text = items[i]
        i += 1
        if not is_action:
            nodes.append(text)
            continue
        keyword, _, rest = text.partition(" ")
        if keyword in ("else", "end"):
            return nodes, i, text
        if keyword in ("if", "range", "with"):
            block, i = _block(keyword, rest.strip(), items, i)
            nodes.append(block)
        else:
            nodes.append(_pipe_of(text))
    return nodes, i, None


def _block(kind: str, condition: str, items: list[tuple[bool, str]], i: int) -> tuple[Block, int]:
    block = Block(kind, _pipe_of(condition))
    block.body, i, stop = _list(items, i)
    if stop is None:
        raise TemplateError(f"unexpected EOF: {{{{{kind}}}}} has no {{{{end}}}}")
    if stop.startswith("else"):
        rest = stop[4:].strip()
        if rest.startswith(("if ", "with ")):  # else if: the nested block takes our {{end}}
            nested_kind, _, nested_condition = rest.partition(" ")
            nested, i = _block(nested_kind, nested_condition.strip(), items, i)
            block.alt = [nested]
            return block, i
        block.alt, i, stop = _list(items, i)
        if stop != "end":
            raise TemplateError(f"{{{{{kind}}}}}: expected {{{{end}}}} after {{{{else}}}}")
    return block, i


def parse(source: str) -> list[Node]:
    """The template *source* as a list of nodes; TemplateError (one line) if malformed."""
    nodes, _i, stop = _list(_items(source), 0)
    if stop is not None:
        raise TemplateError(f"unexpected {{{{{stop}}}}}")
    return nodes


# -- evaluation -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Scope:
    root: object
    vars: dict[str, object]


def _lookup(value: object, name: str) -> object:
    if isinstance(value, Missing) or value is None:
        raise TemplateError(f"nil pointer evaluating .{name}")
    if isinstance(value, GoMap):
        return value.get(name, MISSING)
    if isinstance(value, dict):
        if name in value:
            return value[name]
        folded = [k for k in value if k.lower() == name.lower()]
        if len(folded) == 1:
            return value[folded[0]]
        raise TemplateError(f"can't evaluate field {name}")
    raise TemplateError(f"can't evaluate field {name} in type {type_name(value)}")


def _operand(op: Operand, dot: object, scope: _Scope) -> object:
    if isinstance(op, Literal):
        return op.value
    if isinstance(op, Sub):
        value = _pipe(op.pipe, dot, scope)
        chain = op.chain
    elif isinstance(op, Field):
        if op.base == ".":
            value = dot
        elif op.base == "$":
            value = scope.root
        elif op.base in scope.vars:
            value = scope.vars[op.base]
        else:
            raise TemplateError(f'undefined variable "{op.base}"')
        chain = op.chain
    else:
        raise TemplateError(f"{op.name} is a function, not a value")
    for name in chain:
        value = _lookup(value, name)
    return value


def _pipe(pipe: Pipe, dot: object, scope: _Scope) -> object:
    value: object = MISSING
    piped = False
    for command in pipe.commands:
        head = command[0]
        if isinstance(head, Func):
            args = [_operand(a, dot, scope) for a in command[1:]]
            if piped:
                args.append(value)
            try:
                value = FUNCS[head.name](*args)
            except TypeError:
                raise TemplateError(f"wrong number of arguments for {head.name}") from None
        else:
            if len(command) > 1 or piped:
                raise TemplateError("can't give an argument to a non-function")
            value = _operand(head, dot, scope)
        piped = True
    for name in pipe.decls:
        scope.vars[name] = value
    return value


def _run(nodes: list[Node], dot: object, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Pipe):
            value = _pipe(node, dot, scope)
            if not node.decls:
                out.append(go_str(value))
        elif node.kind == "if":
            _run(node.body if truthy(_pipe(node.pipe, dot, scope)) else node.alt, dot, scope, out)
        elif node.kind == "with":
            value = _pipe(Pipe((), node.pipe.commands), dot, scope)
            _run(node.body, value, scope, out) if truthy(value) else _run(node.alt, dot, scope, out)
        else:
            _range(node, dot, scope, out)


def _range(node: Block, dot: object, scope: _Scope, out: list[str]) -> None:
    value = _pipe(Pipe((), node.pipe.commands), dot, scope)
    items: list[tuple[object, object]]
    if isinstance(value, dict):
        items = [(k, value[k]) for k in sorted(value)]
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [(i, i) for i in range(value)]
    elif value is None or isinstance(value, Missing):
        items = []
    else:
        raise TemplateError(f"range can't iterate over {go_str(value)}")
    if not items:
        _run(node.alt, dot, scope, out)
    decls = node.pipe.decls
    for key, element in items:
        if len(decls) == 1:
            scope.vars[decls[0]] = element
        elif len(decls) == 2:
            scope.vars[decls[0]], scope.vars[decls[1]] = key, element
        _run(node.body, element, scope, out)


def execute(nodes: list[Node], dot: object) -> str:
    out: list[str] = []
    _run(nodes, dot, _Scope(dot, {"$": dot}), out)
    return "".join(out)


def fields(nodes: list[Node]) -> Iterator[Field]:
    """Every field an action names (for the header of a table)."""
    for node in nodes:
        if isinstance(node, Pipe):
            yield from _pipe_fields(node)
        elif isinstance(node, Block):
            yield from _pipe_fields(node.pipe)
            yield from fields(node.body)
            yield from fields(node.alt)


def _pipe_fields(pipe: Pipe) -> Iterator[Field]:
    for command in pipe.commands:
        for op in command:
            if isinstance(op, Field):
                yield op
            elif isinstance(op, Sub):
                yield from _pipe_fields(op.pipe)


