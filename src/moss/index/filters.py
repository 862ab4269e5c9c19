"""Metadata filters: compile a filter dict once, then match one document or a whole column.

Two forms are accepted, and may be mixed inside ``$and`` / ``$or`` / ``$not``::

    {"field": "category", "condition": {"$eq": "shipping"}}          # moss form
    {"$and": [{"field": "price", "condition": {"$lt": 100}}, ...]}
    {"category": "shipping", "price": {"$lt": 100}}                   # plain form (LangChain)
    {"$or": [{"category": "a"}, {"category": "b"}], "year": {"$gte": 2020}}

A dict whose keys are exactly ``field`` and ``condition`` is the moss form; any other dict is the
plain form: each key is a metadata field (implicit ``$eq`` for a scalar, an operator dict
otherwise) or a logical operator, and all keys must hold (implicit AND). ``$not`` takes one
filter (or a list, meaning the AND of its items).

Semantics, for the top-level metadata key named by the field:

- ``$eq $ne``: scalar equality; numbers compare as numbers (``1 == 1.0``) but a bool is not a
  number (``True != 1``).
- ``$gt $gte $lt $lte``: numbers against numbers, strings against strings; any other pairing
  (a string against a number, a bool, a list, null) is simply false.
- ``$in $nin``: the value equals one of the listed scalars (``$nin``: none of them).
- ``$contains``: a list value holds the scalar, or a string value has it as a substring.
- ``$all $any``: a list value holds all (any) of the listed scalars.
- ``$exists``: the key is present (``true``) or absent (``false``).
- A missing key, or metadata that is None, matches ``$ne`` and ``$nin`` (and ``$exists: false``)
  and nothing else, as LlamaIndex's SimpleVectorStore does. ``$ne`` and ``$nin`` are the exact
  negations of ``$eq`` and ``$in``.

A malformed filter raises :class:`~moss.errors.InvalidArgumentError` when compiled; matching
never raises.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError

__all__ = ["OPERATORS", "Filter", "compile_filter"]

Meta = Mapping[str, Any] | None
Mask = npt.NDArray[np.bool_]
# A test takes a field's value, or _MISSING when the key is absent, and gives the moss answer.
_Test = Callable[[Any], bool]

_FORMS = (
    'accepted forms: {"field": "category", "condition": {"$eq": "shipping"}}, '
    '{"category": "shipping", "price": {"$lt": 100}}, and {"$and": [...]} / {"$or": [...]} / '
    '{"$not": {...}} combining either; operators: $eq $ne $gt $gte $lt $lte $in $nin $contains '
    "$all $any $exists"
)
_SCALARS = (str, int, float, bool, type(None))
_NUMBER_TYPES = frozenset((int, float))
_STR_TYPES = frozenset((str,))


class _Missing:
    """The value of an absent key: equal to nothing, so every test sees it as a non-match."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


class Filter:
    """A compiled filter: ``flt(metadata)`` for one document, ``flt.mask(list)`` for many.

    >>> flt = compile_filter({"category": "shipping", "price": {"$lt": 100}})
    >>> flt({"category": "shipping", "price": 12.5}), flt(None)
    (True, False)
    >>> flt.mask([{"category": "shipping", "price": 5}, {"category": "billing"}]).tolist()
    [True, False]
    """

    __slots__ = ("_root",)

    def __init__(self, root: _Node) -> None:
        self._root = root

    def __call__(self, metadata: Meta) -> bool:
        return self._root.match(metadata)

    def mask(self, metadata: Sequence[Meta]) -> Mask:
        """Whether each metadata entry matches, as a boolean array (column-wise, fast)."""
        return self._root.mask(_Columns(metadata))


def compile_filter(filter: Mapping[str, Any] | None) -> Filter | None:
    """Compile ``filter`` into a :class:`Filter`; None (match all) for None or ``{}``."""
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise _error(f"a filter must be a dict, got {type(filter).__name__}")
    if not filter:
        return None
    return Filter(_compile_node(filter, "filter"))


def _error(what: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid filter: {what}; {_FORMS}")


# --- evaluation -----------------------------------------------------------------------------


class _Columns:
    """The metadata list seen one field at a time; each field's column is extracted once."""

    def __init__(self, metadata: Sequence[Meta]) -> None:
        self.metadata = metadata
        self.count = len(metadata)
        self._values: dict[str, list[Any]] = {}
        self._objects: dict[str, npt.NDArray[np.object_]] = {}

    def values(self, field: str) -> list[Any]:
        """The field's value per document, _MISSING where absent."""
        column = self._values.get(field)
        if column is None:
            column = [
                _MISSING if meta is None else meta.get(field, _MISSING) for meta in self.metadata
            ]
            self._values[field] = column
        return column

    def objects(self, field: str) -> npt.NDArray[np.object_]:
        """The same column as a 1-d object array (for vectorised ==)."""
        array = self._objects.get(field)
        if array is None:
            array = np.fromiter(self.values(field), dtype=object, count=self.count)
            self._objects[field] = array
        return array


class _Node:
    def match(self, meta: Meta) -> bool:
        raise NotImplementedError

    def mask(self, columns: _Columns) -> Mask:
        raise NotImplementedError


class _And(_Node):
    def __init__(self, parts: list[_Node]) -> None:
        self.parts = parts

    def match(self, meta: Meta) -> bool:
        return all(part.match(meta) for part in self.parts)

    def mask(self, columns: _Columns) -> Mask:
        result = np.ones(columns.count, dtype=bool)
        for part in self.parts:
            result &= part.mask(columns)
        return result


class _Or(_Node):
    def __init__(self, parts: list[_Node]) -> None:
        self.parts = parts

    def match(self, meta: Meta) -> bool:
        return any(part.match(meta) for part in self.parts)

    def mask(self, columns: _Columns) -> Mask:
        result = np.zeros(columns.count, dtype=bool)
        for part in self.parts:
            result |= part.mask(columns)
        return result


class _Not(_Node):
    def __init__(self, inner: _Node) -> None:
        self.inner = inner

    def match(self, meta: Meta) -> bool:
        return not self.inner.match(meta)

    def mask(self, columns: _Columns) -> Mask:
        return ~self.inner.mask(columns)


class _Condition(_Node):
    """One operator applied to one field."""

    def __init__(self, field: str, test: _Test, fast: _FastMask | None) -> None:
        self.field = field
        self.test = test
        self.fast = fast

    def match(self, meta: Meta) -> bool:
        return self.test(_MISSING if meta is None else meta.get(self.field, _MISSING))

    def mask(self, columns: _Columns) -> Mask:
        if self.fast is not None:
            return self.fast(columns, self.field)
        values = columns.values(self.field)
        return np.fromiter(map(self.test, values), dtype=bool, count=columns.count)


_FastMask = Callable[[_Columns, str], Mask]


# --- structure ------------------------------------------------------------------------------


def _compile_node(node: object, path: str) -> _Node:
    if not isinstance(node, Mapping):
        raise _error(f"{path} must be a dict, got {type(node).__name__}")
    if "field" in node and "condition" in node:
        # The moss form; a plain filter on metadata keys named so can go through $and.
        field = node["field"]
        if len(node) != 2 or not isinstance(field, str):
            raise _error(f"{path} must hold a string field and a condition, nothing else")
        return _compile_field(field, node["condition"], f"{path}.condition", implicit=False)
    parts: list[_Node] = []
    for key, value in node.items():
        if not isinstance(key, str):
            raise _error(f"{path} has a non-string key {key!r}")
        if key.startswith("$"):
            parts.append(_compile_logical(key, value, f"{path}.{key}"))
        else:
            parts.append(_compile_field(key, value, f"{path}.{key}", implicit=True))
    return parts[0] if len(parts) == 1 else _And(parts)


def _compile_logical(op: str, operand: object, path: str) -> _Node:
    if op == "$not":
        if _is_list(operand):
            return _Not(_And(_compile_list(operand, path)))
        return _Not(_compile_node(operand, path))
    if op not in ("$and", "$or"):
        raise _error(f"unknown logical operator {op!r} at {path} (use $and, $or or $not)")
    if not _is_list(operand):
        raise _error(f"{path} takes a list of filters, got {type(operand).__name__}")
    parts = _compile_list(operand, path)
    return _And(parts) if op == "$and" else _Or(parts)


def _compile_list(operand: Any, path: str) -> list[_Node]:
    return [_compile_node(item, f"{path}[{i}]") for i, item in enumerate(operand)]


def _compile_field(field: str, condition: object, path: str, *, implicit: bool) -> _Node:
    if isinstance(condition, Mapping):
        if not condition:
            raise _error(f"{path} is an empty condition")
        if not all(isinstance(k, str) and k.startswith("$") for k in condition):
            raise _error(
                f"{path} mixes field names into a condition (filters apply to top-level keys "
                "only; a condition is a dict of $operators)"
            )
        ops = list(condition.items())
    elif implicit and isinstance(condition, _SCALARS):
        ops = [("$eq", condition)]
    elif implicit:
        raise _error(
            f"{path} compares with a {type(condition).__name__}; equality takes a scalar "
            "(use $in for one of several values, $contains / $all / $any for list values)"
        )
    else:
        raise _error(f"{path} must be a dict of $operators, got {type(condition).__name__}")
    parts: list[_Node] = [_compile_op(field, op, operand, f"{path}.{op}") for op, operand in ops]
    return parts[0] if len(parts) == 1 else _And(parts)


def _compile_op(field: str, op: str, operand: object, path: str) -> _Condition:
    builder = _BUILDERS.get(op)
    if builder is None:
        raise _error(f"unknown operator {op!r} at {path}")
    test, fast = builder(operand, path)
    return _Condition(field, test, fast)


# --- operators ------------------------------------------------------------------------------
# Each builder validates its operand and returns (test, fast mask or None). A test receives the
# value or _MISSING, which no equality, ordering or list test accepts: so a missing key matches
# exactly the negations ($ne, $nin) and $exists: false.

_Built = tuple[_Test, _FastMask | None]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_list(value: object) -> bool:
    return isinstance(value, (list, tuple))


def _scalar(operand: object, path: str) -> Any:
    if not isinstance(operand, _SCALARS):
        raise _error(
            f"{path} takes a scalar (str, number, bool or null), got {type(operand).__name__}"
        )
    return operand


def _scalar_list(operand: object, path: str) -> list[Any]:
    if not isinstance(operand, (list, tuple)):
        raise _error(f"{path} takes a list of scalars, got {type(operand).__name__}")
    return [_scalar(item, f"{path}[{i}]") for i, item in enumerate(operand)]


def _key(value: Any) -> Hashable:
    """A hashable key under which two values are equal iff moss calls them equal.

    Python says ``True == 1``; moss does not, so bools get their own tag. Numbers share one tag
    so that ``1`` and ``1.0`` meet; lists, dicts and _MISSING get a key equal to nothing else.
    """
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, (int, float)):
        return (float, value)
    if isinstance(value, str) or value is None:
        return (type(value), value)
    return (object, id(value))


def _eq(value: Any) -> _Test:
    if isinstance(value, bool) or value is None:
        return lambda v: v is value
    if isinstance(value, str):
        return lambda v: isinstance(v, str) and v == value
    return lambda v: _is_number(v) and v == value


def _eq_mask(value: Any) -> _FastMask:
    """Vectorised ``$eq``: numpy's elementwise == finds candidates, the exact test confirms.

    Python's == only errs by accepting more (``True == 1``), so confirming the candidates
    with the moss test is exact, and cheap when few documents match.
    """
    test = _eq(value)

    def mask(columns: _Columns, field: str) -> Mask:
        result: Mask = np.asarray(columns.objects(field) == value, dtype=bool)
        candidates = np.flatnonzero(result)
        if len(candidates):
            values = columns.values(field)
            result[candidates] = [test(values[i]) for i in candidates.tolist()]
        return result

    return mask


def _eq_op(operand: object, path: str) -> _Built:
    value = _scalar(operand, path)
    return _eq(value), _eq_mask(value)


def _ne_op(operand: object, path: str) -> _Built:
    value = _scalar(operand, path)
    eq, eq_mask = _eq(value), _eq_mask(value)
    return (lambda v: not eq(v)), (lambda columns, field: ~eq_mask(columns, field))


def _order_op(compare: Callable[[Any, Any], bool]) -> Callable[[object, str], _Built]:
    def build(operand: object, path: str) -> _Built:
        if _is_number(operand):
            kinds, accepts = _NUMBER_TYPES, _is_number
        elif isinstance(operand, str):
            kinds, accepts = _STR_TYPES, _is_str
        else:
            raise _error(f"{path} compares with a number or a string, got {type(operand).__name__}")

        def test(v: Any) -> bool:
            return accepts(v) and compare(v, operand)

        def mask(columns: _Columns, field: str) -> Mask:
            # Exact types take the inline comparison; anything else (bool, subclasses, lists,
            # _MISSING) goes through the full test. About 2x faster than map(test, ...).
            values = columns.values(field)
            matches = [compare(v, operand) if type(v) in kinds else test(v) for v in values]
            return np.fromiter(matches, dtype=bool, count=columns.count)

        return test, mask

    return build


def _in(operand: object, path: str) -> tuple[_Test, _FastMask]:
    items = _scalar_list(operand, path)
    keys = frozenset(_key(item) for item in items)

    def test(v: Any) -> bool:
        return _key(v) in keys

    # One set per exact type, so that Python's True == 1 cannot leak into set membership.
    numbers = frozenset(item for item in items if _is_number(item))
    by_type: dict[type, frozenset[Any]] = {
        str: frozenset(item for item in items if isinstance(item, str)),
        int: numbers,
        float: numbers,
        bool: frozenset(item for item in items if isinstance(item, bool)),
        type(None): frozenset(item for item in items if item is None),
    }

    def mask(columns: _Columns, field: str) -> Mask:
        values = columns.values(field)
        matches = [v in by_type[t] if (t := type(v)) in by_type else test(v) for v in values]
        return np.fromiter(matches, dtype=bool, count=columns.count)

    return test, mask


def _in_op(operand: object, path: str) -> _Built:
    return _in(operand, path)


def _nin_op(operand: object, path: str) -> _Built:
    test, mask = _in(operand, path)
    return (lambda v: not test(v)), (lambda columns, field: ~mask(columns, field))


def _contains_op(operand: object, path: str) -> _Built:
    value = _scalar(operand, path)
    if isinstance(value, str):
        # A str equals only strs, so Python's `in` is exact for lists and is the substring test
        # for strings.
        return (lambda v: isinstance(v, (str, list, tuple)) and value in v), None
    key = _key(value)
    return (lambda v: _is_list(v) and any(_key(item) == key for item in v)), None


def _all_op(operand: object, path: str) -> _Built:
    wanted = frozenset(_key(item) for item in _scalar_list(operand, path))
    return (lambda v: _is_list(v) and wanted.issubset(map(_key, v))), None


def _any_op(operand: object, path: str) -> _Built:
    wanted = frozenset(_key(item) for item in _scalar_list(operand, path))
    return (lambda v: _is_list(v) and not wanted.isdisjoint(map(_key, v))), None


def _exists_op(operand: object, path: str) -> _Built:
    if not isinstance(operand, bool):
        raise _error(f"{path} takes true or false, got {operand!r}")
    return (lambda v: (v is not _MISSING) is operand), None


_BUILDERS: dict[str, Callable[[object, str], _Built]] = {
    "$eq": _eq_op,
    "$ne": _ne_op,
    "$gt": _order_op(operator.gt),
    "$gte": _order_op(operator.ge),
    "$lt": _order_op(operator.lt),
    "$lte": _order_op(operator.le),
    "$in": _in_op,
    "$nin": _nin_op,
    "$contains": _contains_op,
    "$all": _all_op,
    "$any": _any_op,
    "$exists": _exists_op,
}

#: The comparison operators a condition may use.
OPERATORS: tuple[str, ...] = tuple(_BUILDERS)
