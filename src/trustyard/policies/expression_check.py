"""The creation-time check of a CEL expression: names, types and cost, before it is stored.

cel-python parses CEL but does not type-check it, so a mistyped variable or an `int`
compared with a `string` would only show up at run time, as a failed promotion. This walk
over the parse tree refuses at creation what cannot evaluate: an unknown variable, function
or field, operands of types no operator takes, a result that is not a boolean. It also holds
the cost down: a tree nested past `MAX_DEPTH` (the evaluator recurses per level) and a
comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) inside another one's body
(quadratic over the BOM) are refused. Types it cannot know (`dyn`) pass and are judged at run
time. It returns the fact variables the expression reads, from which its needs follow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lark
from celpy import celtypes
from celpy.evaluation import celstr

from trustyard.policies.interfaces import PolicyInvalid
from trustyard.policies.patterns import MAX_LIST_STEPS, PatternInvalid, compile_pattern, steps

Tree = lark.Tree[lark.Token]
WHERE = "expression"
MAX_DEPTH = 250  # parse-tree levels; a parenthesis costs about ten, an `&&` one

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_ORDERED = frozenset({"int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"})
_NUMBERS = frozenset({"int", "uint", "double"})
_DATE_PARTS = frozenset(
    {"getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek"}
)
_TIME_PARTS = frozenset({"getHours", "getMinutes", "getSeconds", "getMilliseconds"})
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
OPERATORS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


@dataclass(frozen=True, slots=True)
class CelType:
    """A static type: `kind` is a CEL type name or `dyn` (known only at run time); a list's
    element or a map's value is `item`; a map with known keys (a record) lists `fields`."""

    kind: str
    item: CelType | None = None
    fields: tuple[tuple[str, CelType], ...] | None = None
    nullable: bool = False  # the value may be null (tag, pushed_at, created_at)

    def __str__(self) -> str:
        if self.kind == "list" and self.item is not None:
            return f"list({self.item})"
        if self.kind == "map" and self.fields is not None:
            return "map"
        if self.kind == "map" and self.item is not None:
            return f"map(string, {self.item})"
        return self.kind

    def field(self, name: str) -> CelType | None:
        return dict(self.fields or ()).get(name)


DYN = CelType("dyn")
BOOL = CelType("bool")
INT = CelType("int")
UINT = CelType("uint")
DOUBLE = CelType("double")
STRING = CelType("string")
BYTES = CelType("bytes")
TIMESTAMP = CelType("timestamp")
DURATION = CelType("duration")
NULL = CelType("null", nullable=True)
TYPE = CelType("type")
_LITERALS = {
    "INT_LIT": INT,
    "UINT_LIT": UINT,
    "FLOAT_LIT": DOUBLE,
    "STRING_LIT": STRING,
    "MLSTRING_LIT": STRING,
    "BYTES_LIT": BYTES,
    "BOOL_LIT": BOOL,
    "NULL_LIT": NULL,
}
_CONVERSIONS = {
    "int": INT,
    "uint": UINT,
    "double": DOUBLE,
    "string": STRING,
    "bool": BOOL,
    "bytes": BYTES,
    "timestamp": TIMESTAMP,
    "duration": DURATION,
    "type": TYPE,
}


def list_of(item: CelType) -> CelType:
    return CelType("list", item=item)


def map_of(item: CelType) -> CelType:
    return CelType("map", item=item)


def record(**fields: CelType) -> CelType:
    return CelType("map", item=DYN, fields=tuple(fields.items()))


@dataclass(frozen=True, slots=True)
class Signature:
    """An extension function: its parameter types and its result."""

    params: tuple[CelType, ...]
    result: CelType


@dataclass(frozen=True, slots=True)
class Checked:
    identifiers: frozenset[str]  # the declared variables the expression reads
    result: CelType


def check(
    tree: Tree,
    variables: Mapping[str, CelType],
    functions: Mapping[str, Signature],
) -> Checked:
    """Check a parsed expression, or raise PolicyInvalid("expression", why)."""
    _check_depth(tree)
    checker = _Checker(variables, functions)
    result = checker.type_of(tree)
    if result.kind not in ("bool", "dyn"):
        raise PolicyInvalid(
            WHERE, f"the expression gives {_a(result)}, not a bool: a policy needs true or false"
        )
    return Checked(frozenset(checker.used), result)


def _check_depth(tree: Tree) -> None:
    stack: list[tuple[Tree, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PolicyInvalid(
                WHERE,
                f"the expression nests too deeply (past {MAX_DEPTH} levels of its parse "
                "tree): use fewer parentheses, or `x in [a, b, c]` for a long chain of "
                "alternatives",
            )
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))


def _refuse(tree: Tree | lark.Token, message: str) -> PolicyInvalid:
    meta = tree.meta if isinstance(tree, lark.Tree) else tree
    line, column = getattr(meta, "line", None), getattr(meta, "column", None)
    where = f" (line {line}, column {column})" if line is not None else ""
    return PolicyInvalid(WHERE, message + where)


def _a(t: CelType) -> str:
    text = str(t)
    return ("an " if text[0] in "aeiou" else "a ") + text


def _records(t: CelType | None) -> bool:
    """A record, or a list of records: a fact group that may be missing (not scanned yet)."""
    return t is not None and (t.fields is not None or (t.item is not None and bool(t.item.fields)))


def _sub(tree: Tree, i: int) -> Tree:
    child = tree.children[i]
    if not isinstance(child, lark.Tree):  # pragma: no cover (the grammar)
        raise _refuse(tree, f"unexpected {tree.data}")
    return child


def _word(tree: Tree, i: int) -> str:
    child = tree.children[i]
    if not isinstance(child, lark.Token):  # pragma: no cover (the grammar)
        raise _refuse(tree, f"unexpected {tree.data}")
    return str(child.value)


def _single_chain(tree: Tree, target: str) -> Tree | None:
    """The `target` node under a chain of one-child nodes (`expr` > ... > `ident`), if any."""
    node = tree
    while node.data != target:
        if len(node.children) != 1 or not isinstance(node.children[0], lark.Tree):
            return None
        node = node.children[0]
    return node


def _literal_string(tree: Tree) -> str | None:
    node = _single_chain(tree, "literal")
    if node is None:
        return None
    token = node.children[0]
    if isinstance(token, lark.Token) and token.type in ("STRING_LIT", "MLSTRING_LIT"):
        return str(celstr(token))
    return None


def _compatible(a: CelType, b: CelType) -> bool:
    if a.kind == "dyn" or b.kind == "dyn":
        return True
    if a.kind == "null" or b.kind == "null":
        other = b if a.kind == "null" else a
        return other.nullable or other.kind in ("null", "map", "list", "type")
    return a.kind == b.kind


def _join(a: CelType, b: CelType) -> CelType:
    if a.kind == "null":
        return CelType(b.kind, b.item, b.fields, nullable=True)
    if b.kind == "null" or a == b:
        return a if b.kind != "null" else CelType(a.kind, a.item, a.fields, nullable=True)
    if a.kind == b.kind and a.kind not in ("list", "map"):
        return CelType(a.kind, nullable=a.nullable or b.nullable)
    return DYN


class _Checker:
    def __init__(self, variables: Mapping[str, CelType], functions: Mapping[str, Signature]):
        self.variables = variables
        self.functions = functions
        self.used: set[str] = set()
        self.scopes: list[tuple[str, CelType]] = []  # comprehension variables, innermost last
        self.enclosing: list[str] = []  # the comprehensions whose body is being checked
        self.pattern_steps = 0  # the literal patterns' compiled size, together

    def type_of(self, tree: Tree) -> CelType:
        handler = getattr(self, "_" + str(tree.data), None)
        if handler is None:
            raise _refuse(tree, f"{tree.data} is not supported in a policy expression")
        result: CelType = handler(tree)
        return result

    def _pass(self, tree: Tree) -> CelType:
        if len(tree.children) != 1 or not isinstance(tree.children[0], lark.Tree):
            raise _refuse(tree, f"unexpected {tree.data}")  # pragma: no cover (the grammar)
        return self.type_of(tree.children[0])

    _member = _primary = _paren_expr = _pass

    def _boolean(self, tree: Tree, what: str) -> None:
        t = self.type_of(tree)
        if t.kind not in ("bool", "dyn"):
            raise _refuse(tree, f"{what} needs a bool, not {_a(t)}")

    # --- operators --------------------------------------------------------------------------

    def _expr(self, tree: Tree) -> CelType:
        if len(tree.children) == 1:
            return self._pass(tree)
        condition, yes, no = _sub(tree, 0), _sub(tree, 1), _sub(tree, 2)
        self._boolean(condition, "the condition of `? :`")
        return _join(self.type_of(yes), self.type_of(no))

    def _logical(self, tree: Tree) -> CelType:
        if len(tree.children) == 1:
            return self._pass(tree)
        op = "||" if tree.data == "conditionalor" else "&&"
        for i in range(len(tree.children)):
            self._boolean(_sub(tree, i), f"`{op}`")
        return BOOL

    _conditionalor = _conditionaland = _logical

    def _binary(self, tree: Tree) -> CelType:
        if len(tree.children) == 1:
            return self._pass(tree)
        op_node, right_tree = _sub(tree, 0), _sub(tree, 1)
        left_tree = _sub(op_node, 0)
        op = OPERATORS[str(op_node.data)]
        left, right = self.type_of(left_tree), self.type_of(right_tree)
        result = _operate(op, left, right)
        if result is None:
            raise _refuse(op_node, f"`{op}` does not take {_a(left)} and {_a(right)}")
        return result

    _relation = _addition = _multiplication = _binary

    def _unary(self, tree: Tree) -> CelType:
        if len(tree.children) == 1:
            return self._pass(tree)
        op_node, operand = _sub(tree, 0), _sub(tree, 1)
        t = self.type_of(operand)
        if op_node.data == "unary_not":
            if t.kind not in ("bool", "dyn"):
                raise _refuse(operand, f"`!` needs a bool, not {_a(t)}")
            return BOOL
        if t.kind not in ("dyn", "int", "double", "duration"):
            raise _refuse(op_node, f"`-` does not take {_a(t)}")
        return t

    # --- names, literals, collections -------------------------------------------------------

    def _ident(self, tree: Tree) -> CelType:
        name = _word(tree, 0)
        for bound, t in reversed(self.scopes):
            if bound == name:
                return t
        if name in self.variables:
            declared = self.variables[name]
            if self.enclosing and declared.kind == "list" and _records(declared):
                raise _refuse(
                    tree,
                    f"`{name}` is read inside the body of {self.enclosing[-1]}(): a list "
                    "of records (the BOM) may be walked only once, its cost would be "
                    "squared; compute what you need of it outside the comprehension",
                )
            self.used.add(name)
            return declared
        if name in _TYPE_NAMES:
            return TYPE
        raise _refuse(
            tree, f"unknown name '{name}' (the variables are: {', '.join(self.variables)})"
        )

    _dot_ident = _ident

    def _literal(self, tree: Tree) -> CelType:
        token = tree.children[0]
        return _LITERALS.get(str(getattr(token, "type", "")), DYN)

    def _items(self, tree: Tree) -> list[CelType]:
        if not tree.children:
            return []
        return [self.type_of(c) for c in _sub(tree, 0).children if isinstance(c, lark.Tree)]

    def _list_lit(self, tree: Tree) -> CelType:
        items = self._items(tree)
        joined = items[0] if items else DYN
        for t in items[1:]:
            joined = _join(joined, t) if _compatible(joined, t) else DYN
        return list_of(joined)

    def _map_lit(self, tree: Tree) -> CelType:
        items = self._items(tree)
        keys, values = items[0::2], items[1::2]
        for key in keys:
            if key.kind not in ("dyn", "int", "uint", "bool", "string"):
                raise _refuse(tree, f"a map key must be an int, uint, bool or string, not {key}")
        joined = values[0] if values else DYN
        for t in values[1:]:
            joined = _join(joined, t) if _compatible(joined, t) else DYN
        return map_of(joined)

    def _member_object(self, tree: Tree) -> CelType:
        raise _refuse(tree, "message construction (`Name{...}`) is not supported")

    def _member_dot(self, tree: Tree) -> CelType:
        receiver = self.type_of(_sub(tree, 0))
        return self._select(tree, receiver, _word(tree, 1))

    def _select(self, tree: Tree, receiver: CelType, name: str) -> CelType:
        if receiver.kind == "dyn":
            return DYN
        if receiver.fields is not None:
            found = receiver.field(name)
            if found is None:
                known = ", ".join(f for f, _ in receiver.fields)
                raise _refuse(tree, f"no field '{name}' (the fields are: {known})")
            return found
        if receiver.kind == "map":
            return receiver.item or DYN
        raise _refuse(tree, f"{_a(receiver)} has no fields (`.{name}`)")

    def _member_index(self, tree: Tree) -> CelType:
        receiver_tree, index_tree = _sub(tree, 0), _sub(tree, 1)
        receiver, index = self.type_of(receiver_tree), self.type_of(index_tree)
        if receiver.kind == "list" and index.kind in ("int", "uint", "dyn"):
            return receiver.item or DYN
        if receiver.kind == "map" and receiver.fields is not None:
            key = _literal_string(index_tree)
            return self._select(tree, receiver, key) if key is not None else DYN
        if receiver.kind == "map" and index.kind in ("string", "dyn"):
            return receiver.item or DYN
        if receiver.kind == "dyn":
            return DYN
        raise _refuse(tree, f"{_a(receiver)} cannot be indexed with {_a(index)}")

    # --- functions, methods, macros ---------------------------------------------------------

    def _args(self, tree: Tree, start: int) -> list[Tree]:
        if len(tree.children) <= start:
            return []
        exprlist = _sub(tree, start)
        return [c for c in exprlist.children if isinstance(c, lark.Tree)]

    def _ident_arg(self, tree: Tree) -> CelType:
        name, args = _word(tree, 0), self._args(tree, 1)
        if name == "has":
            return self._has(tree, args)
        if name == "dyn":
            self._arity(tree, name, args, 1)
            self.type_of(args[0])
            return DYN
        if name in self.functions:
            signature = self.functions[name]
            self._arity(tree, name, args, len(signature.params))
            for param, arg in zip(signature.params, args, strict=True):
                t = self.type_of(arg)
                if not _compatible(param, t):
                    raise _refuse(arg, f"{name}() takes {_a(param)} here, not {_a(t)}")
            return signature.result
        if name in ("size", "matches"):
            self._arity(tree, name, args, 1 if name == "size" else 2)
            return self._method(tree, name, self.type_of(args[0]), args[1:])
        if name in _CONVERSIONS:
            self._arity(tree, name, args, 1)
            self.type_of(args[0])
            self._literal_argument(name, args[0])
            return _CONVERSIONS[name]
        known = ", ".join(sorted({*self.functions, "has", "dyn", "size", "matches"}))
        raise _refuse(
            tree,
            f"unknown function '{name}' (the functions are: {known} and the "
            "type conversions int, string, timestamp, duration...)",
        )

    def _dot_ident_arg(self, tree: Tree) -> CelType:
        raise _refuse(tree, "a function called with a leading dot (`.f(x)`) is not supported")

    def _arity(self, tree: Tree, name: str, args: Sequence[Tree], n: int) -> None:
        if len(args) != n:
            raise _refuse(tree, f"{name}() takes {n} argument(s), not {len(args)}")

    def _literal_argument(self, name: str, arg: Tree) -> None:
        text = _literal_string(arg)
        if text is None or name not in ("timestamp", "duration"):
            return
        try:
            celtypes.TimestampType(text) if name == "timestamp" else celtypes.DurationType(text)
        except (ValueError, TypeError):
            example = "'2026-01-31T00:00:00Z'" if name == "timestamp" else "'90d', '12h30m'"
            raise _refuse(arg, f"{name}('{text}') does not parse (like {example})") from None

    def _has(self, tree: Tree, args: list[Tree]) -> CelType:
        self._arity(tree, "has", args, 1)
        selection = _single_chain(args[0], "member_dot")
        if selection is None:
            raise _refuse(tree, "has() takes a field selection, like has(labels.team)")
        receiver = self.type_of(_sub(selection, 0))
        self._select(selection, receiver, _word(selection, 1))
        bound = {name for name, _ in self.scopes}
        names = {
            _word(node, 0)
            for node in selection.iter_subtrees()
            if node.data in ("ident", "dot_ident") and _word(node, 0) not in bound
        }
        if receiver.fields is not None or any(_records(self.variables.get(n)) for n in names):
            raise _refuse(
                tree,
                "has() tests a key of a map such as labels; the fields of the image's "
                "records (components, vulnerabilities) are always there once known, and "
                "has() would answer false before a scan instead of waiting for it",
            )
        return BOOL

    def _pattern(self, tree: Tree, pattern: str) -> None:
        """A literal pattern measured and compiled now (patterns.py: `regex` writes counted
        repeats out in full); all of them together held to the budget of a rule list."""
        try:
            compile_pattern(pattern)
        except PatternInvalid as e:
            raise _refuse(tree, f"pattern '{pattern[:80]}' {e}") from None
        self.pattern_steps += steps(pattern)
        if self.pattern_steps > MAX_LIST_STEPS:
            raise _refuse(
                tree,
                f"the patterns of this expression would compile to more than "
                f"{MAX_LIST_STEPS} steps together",
            )

    def _member_dot_arg(self, tree: Tree) -> CelType:
        name, args = _word(tree, 1), self._args(tree, 2)
        receiver = self.type_of(_sub(tree, 0))
        if name in MACROS:
            return self._macro(tree, name, receiver, args)
        return self._method(tree, name, receiver, args)

    def _method(self, tree: Tree, name: str, receiver: CelType, args: list[Tree]) -> CelType:
        kind = receiver.kind
        if name in ("contains", "startsWith", "endsWith", "matches"):
            self._arity(tree, name, args, 1)
            t = self.type_of(args[0])
            if kind not in ("string", "dyn") or t.kind not in ("string", "dyn"):
                raise _refuse(tree, f"{name}() takes a string and a string, not {receiver}, {t}")
            pattern = _literal_string(args[0]) if name == "matches" else None
            if pattern is not None:
                self._pattern(args[0], pattern)
            return BOOL
        if name == "size":
            self._arity(tree, name, args, 0)
            if kind not in ("string", "bytes", "list", "map", "dyn"):
                raise _refuse(
                    tree, f"size() takes a string, bytes, list or map, not {_a(receiver)}"
                )
            return INT
        if name in _DATE_PARTS or name in _TIME_PARTS:
            takes = {"timestamp"} | ({"duration"} if name in _TIME_PARTS else set())
            if kind not in takes | {"dyn"} or len(args) > 1:
                raise _refuse(tree, f"{name}() takes a {' or '.join(sorted(takes))}")
            for arg in args:
                self.type_of(arg)
            return INT
        raise _refuse(tree, f"unknown function '{name}' on {_a(receiver)}")

    def _macro(self, tree: Tree, name: str, receiver: CelType, args: list[Tree]) -> CelType:
        if self.enclosing:
            raise _refuse(
                tree,
                f"{name}() inside the body of {self.enclosing[-1]}(): comprehensions may not "
                "nest (the cost would multiply); to test a component's licences use "
                "`'MIT' in c.licenses`",
            )
        if len(args) != 2:
            raise _refuse(tree, f"{name}() takes a variable name and an expression")
        variable = _single_chain(args[0], "ident")
        if variable is None:
            raise _refuse(args[0], f"the first argument of {name}() must be a variable name")
        if receiver.kind == "list":
            element = receiver.item or DYN
        elif receiver.kind == "map":
            element = STRING if receiver.fields is not None else DYN
        elif receiver.kind == "dyn":
            element = DYN
        else:
            raise _refuse(tree, f"{name}() walks a list or a map, not {_a(receiver)}")
        self.scopes.append((_word(variable, 0), element))
        self.enclosing.append(name)
        try:
            body = self.type_of(args[1])
        finally:
            self.scopes.pop()
            self.enclosing.pop()
        if name == "map":
            return list_of(body)
        if body.kind not in ("bool", "dyn"):
            raise _refuse(args[1], f"the body of {name}() must be a bool, not {_a(body)}")
        return list_of(element) if name == "filter" else BOOL


def _operate(op: str, a: CelType, b: CelType) -> CelType | None:
    """The type `a op b` gives, or None when no overload takes these operands."""
    dyn = a.kind == "dyn" or b.kind == "dyn"
    if op in ("==", "!="):
        return BOOL if _compatible(a, b) else None
    if op in ("<", "<=", ">", ">="):
        ok = dyn or (a.kind == b.kind and a.kind in _ORDERED)
        return BOOL if ok else None
    if op == "in":
        if b.kind == "list":
            return BOOL if _compatible(a, b.item or DYN) else None
        if b.kind == "map":
            return BOOL if a.kind in ("dyn", "string", "int", "uint", "bool") else None
        return BOOL if b.kind == "dyn" else None
    if dyn:
        return DYN
    pair = (a.kind, b.kind)
    if op == "+":
        if a.kind == b.kind and a.kind in _NUMBERS | {"string", "bytes", "duration"}:
            return CelType(a.kind)
        if a.kind == b.kind == "list":
            return list_of(_join(a.item or DYN, b.item or DYN))
        if pair in (("timestamp", "duration"), ("duration", "timestamp")):
            return TIMESTAMP
        return None
    if op == "-":
        if a.kind == b.kind and a.kind in _NUMBERS | {"duration"}:
            return CelType(a.kind)
        if pair == ("timestamp", "timestamp"):
            return DURATION
        return TIMESTAMP if pair == ("timestamp", "duration") else None
    numbers = _NUMBERS if op != "%" else frozenset({"int", "uint"})
    return CelType(a.kind) if a.kind == b.kind and a.kind in numbers else None
