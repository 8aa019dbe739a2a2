"""A serialized ExportedProgram (``models/<m>.json``) held to a plain graph before torch deserialises it.

Three of its fields are code to torch: a node's ``target`` is resolved by attribute lookup from ``torch``
(``torch.serialization.os.system`` resolves, and the graph then calls it); ``expr_str`` goes through
``sympy.sympify`` (an ``eval``); ``guards_code`` is ``exec``-ed when ``.module()`` builds the guard function.
So: targets are aten/prims operators (minus the two that take a file name), the symbolic-shape helpers
and a few higher-order ops; expressions and guards are parsed with ``ast`` (which runs nothing) and may
hold only names, numbers, arithmetic, comparisons and the calls torch itself writes there.
"""
from __future__ import annotations

import ast
import re

_OPERATOR = re.compile(r"torch\.ops\.(aten|prims)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)")
FILE_OPS = frozenset({"from_file", "save"})  # the aten schemas with a filename argument (torch 2.13)
_SYM_TARGETS = frozenset(
    [f"_operator.{n}" for n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "eq", "ne",
                                "lt", "le", "gt", "ge", "and_", "or_", "not_", "getitem", "abs")]
    + [f"math.{n}" for n in ("trunc", "floor", "ceil", "sqrt")]
    + [f"torch.{n}" for n in ("sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt", "sym_not",
                              "sym_sum")]
    + [f"torch.ops.higher_order.{n}" for n in ("cond", "while_loop", "scan", "map_impl",
                                                "wrap_with_set_grad_enabled", "wrap_with_autocast")])

# sympy's and torch.utils._sympy's constructors, as srepr writes them
SYMPY_NAMES = frozenset({
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Abs", "Mod", "floor", "ceiling",
    "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality", "Unequality", "StrictLessThan", "StrictGreaterThan",
    "LessThan", "GreaterThan", "And", "Or", "Not", "true", "false", "True", "False", "oo", "zoo", "nan",
    "Infinity", "NegativeInfinity", "NegativeOne", "One", "Zero", "Half", "BooleanTrue", "BooleanFalse",
    "Piecewise", "ExprCondPair", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt",
    "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "OpaqueUnaryFn_sqrt", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor", "Identity",
})
SYMBOL = re.compile(r"[a-z]+\d+")  # s0, u3, zuf1: the names torch gives shape symbols
GUARD_CALLS = frozenset({"max", "min", "abs", "int", "float", "IsNonOverlappingAndDenseIndicator"})
GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
MATH_CALLS = frozenset({"floor", "ceil", "trunc", "sqrt", "isnan", "isinf"})
_KEY = re.compile(r"[A-Za-z0-9_.]*")
_ARITHMETIC = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.operator, ast.unaryop,
               ast.boolop, ast.cmpop, ast.Load, ast.Constant, ast.Name, ast.Call, ast.keyword)
MAX_TEXT = 20_000
MAX_INT = 1 << 64   # an integer literal; sympy evaluates Integer arithmetic eagerly
MAX_EXPONENT = 64


def program_refusal(program) -> str | None:
    """What in the program is outside a plain graph (phrased to follow "member X"), or None."""
    if not isinstance(program, dict) or "graph_module" not in program:
        return "is not a serialized ExportedProgram"
    for guard in program.get("guards_code") or []:
        reason = _expression_refusal(guard, _guard_node)
        if reason:
            return f"has guard code {_quote(guard)} that is not a shape check ({reason})"
    stack = [program]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "target" in item and not _target_allowed(item["target"]):
                return f"calls {_quote(item['target'])}, which is not an aten/prims operator stackc runs"
            if "expr_str" in item:
                reason = _expression_refusal(item["expr_str"], _sympy_node)
                if reason:
                    return f"has a shape expression {_quote(item['expr_str'])} that is not arithmetic ({reason})"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _target_allowed(target) -> bool:
    if not isinstance(target, str):
        return False
    match = _OPERATOR.fullmatch(target)
    return (match is not None and match.group(2) not in FILE_OPS) or target in _SYM_TARGETS


def _expression_refusal(text, check) -> str | None:
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return "not a short string"
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "not an expression"
    for node in ast.walk(tree):
        reason = check(node)
        if reason:
            return reason
    return None


def _sympy_node(node) -> str | None:
    if not isinstance(node, _ARITHMETIC):
        return type(node).__name__
    if isinstance(node, ast.Name) and node.id not in SYMPY_NAMES and not SYMBOL.fullmatch(node.id):
        return f"name {node.id}"
    if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in SYMPY_NAMES):
        return "a call"
    if isinstance(node, ast.keyword) and not (node.arg and isinstance(node.value, ast.Constant)
                                              and isinstance(node.value.value, bool)):
        return "a keyword"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and not SYMBOL.fullmatch(node.value):
        return f"string {node.value!r}"
    return _number_refusal(node)


def _guard_node(node) -> str | None:
    if isinstance(node, ast.Subscript):
        key = node.slice
        ok_key = isinstance(key, ast.Constant) and (type(key.value) is int or
                                                     (isinstance(key.value, str) and _KEY.fullmatch(key.value)))
        return None if ok_key and _is_path(node) else "a subscript"
    if isinstance(node, ast.Attribute):
        value = node.value
        if isinstance(value, ast.Name) and value.id == "math" and node.attr in MATH_CALLS:
            return None
        return None if node.attr in GUARD_METHODS and _is_path(value) else f"attribute {node.attr}"
    if not isinstance(node, _ARITHMETIC) or isinstance(node, ast.keyword):
        return type(node).__name__
    if isinstance(node, ast.Name) and node.id not in GUARD_CALLS | {"L", "math"}:
        return f"name {node.id}"
    if isinstance(node, ast.Call) and not (
            (isinstance(node.func, ast.Name) and node.func.id in GUARD_CALLS)
            or (isinstance(node.func, ast.Attribute) and (node.func.attr in MATH_CALLS or not node.args))):
        return "a call"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and not _KEY.fullmatch(node.value):
        return "a string"  # an input's name in L['x'] and nothing that could close a quote
    return _number_refusal(node)


def _is_path(node) -> bool:
    """``L['x'][0]`` or ``L['x'].size()[1]``: an input, optionally a size/stride of it."""
    while True:
        if isinstance(node, ast.Name):
            return node.id == "L"
        if isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.args:
            node = node.func.value
        elif isinstance(node, ast.Attribute) and node.attr in GUARD_METHODS:
            node = node.value
        else:
            return False


def _number_refusal(node) -> str | None:
    if isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) > MAX_INT:
        return "a huge integer"
    exponent = None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = node.right
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and "Pow" in node.func.id and len(node.args) == 2:
        exponent = node.args[1]
    if isinstance(exponent, ast.Call) and exponent.args:  # Integer(70)
        exponent = exponent.args[0]
    if isinstance(exponent, ast.Constant) and isinstance(exponent.value, (int, float)) \
            and abs(exponent.value) > MAX_EXPONENT:
        return "a huge power"
    return None


def _quote(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"
