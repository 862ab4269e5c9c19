"""How LangGraph store items are laid out as moss documents (pure helpers, no I/O).

One moss index holds a whole store. Each item is one *item document* (id ``i-<hash>``) whose
metadata carries the namespace as path components ``ns0``, ``ns1``... (so a namespace prefix is
an equality filter), the joined namespace ``ns``, the ``key``, the JSON ``value``, its
timestamps, its expiry, and a flat copy of the value's scalar fields under ``v.<path>`` (moss
filters read top-level keys, so value filters become filters on those). Each text embedded for
an item is a *vector document* (id ``v-<hash>``) with the same namespace and ``v.`` fields, so
a semantic search under a prefix is one moss query over vector documents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import Item, MatchCondition, SearchItem, get_text_at_path, tokenize_path

from moss import DocumentInfo, InvalidArgumentError

from ._records import copy_json

ITEM, VECTOR = "item", "vector"
#: Operators of LangGraph's value filters (those its InMemoryStore supports).
FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
_FIELD = "v."
_SCALARS = (str, int, float, bool, type(None))


def item_id(namespace: Sequence[str], key: str) -> str:
    """The moss document id of an item: a hash of its namespace and key (ids are length-capped)."""
    return "i-" + _digest([list(namespace), key])


def vector_id(namespace: Sequence[str], key: str, path: str) -> str:
    """The moss document id of one embedded text of an item."""
    return "v-" + _digest([list(namespace), key, path])


def _digest(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:40]


def namespace_fields(namespace: Sequence[str]) -> dict[str, Any]:
    """The metadata that places a document under ``namespace`` (one key per component)."""
    fields: dict[str, Any] = {f"ns{i}": label for i, label in enumerate(namespace)}
    fields["ns"] = list(namespace)
    fields["depth"] = len(namespace)
    return fields


def value_fields(value: Mapping[str, Any], prefix: str = _FIELD) -> dict[str, Any]:
    """The value's scalar fields, nested ones by dotted path, as filterable metadata keys."""
    fields: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, Mapping):
            fields.update(value_fields(item, f"{prefix}{name}."))
        elif isinstance(item, _SCALARS):
            fields[f"{prefix}{name}"] = item
    return fields


def texts_to_embed(
    value: Mapping[str, Any], fields: Sequence[str] | None, default: Sequence[str]
) -> list[tuple[str, str]]:
    """(path, text) pairs to embed for a value, as LangGraph's stores choose them.

    ``fields`` is the put's ``index`` list (None: the store's ``default`` fields); a path that
    yields several texts gets one entry per text, named ``path.i``.
    """
    chosen: list[tuple[str, str]] = []
    for path in fields if fields is not None else default:
        texts = get_text_at_path(value, path if path == "$" else tokenize_path(path))
        if len(texts) == 1:
            chosen.append((path, texts[0]))
        else:
            chosen.extend((f"{path}.{i}", text) for i, text in enumerate(texts))
    return [(path, text) for path, text in chosen if text]


def item_document(
    namespace: Sequence[str],
    key: str,
    value: Mapping[str, Any],
    *,
    created_at: float,
    updated_at: float,
    ttl_minutes: float | None,
    vectors: list[str],
    placeholder: list[float],
) -> DocumentInfo:
    """The item document; its vector is a fixed placeholder (only vector documents are ranked)."""
    metadata: dict[str, Any] = {
        "kind": ITEM,
        "key": key,
        "value": copy_json(dict(value)),
        "created_at": created_at,
        "updated_at": updated_at,
        "vectors": vectors,
        **namespace_fields(namespace),
        **value_fields(value),
    }
    if ttl_minutes is not None:
        metadata["ttl"] = ttl_minutes
        metadata["expires_at"] = updated_at + ttl_minutes * 60
    return DocumentInfo(
        id=item_id(namespace, key), text=key, metadata=metadata, embedding=placeholder
    )


def vector_document(
    namespace: Sequence[str], key: str, value: Mapping[str, Any], path: str, text: str
) -> DocumentInfo:
    """One text of an item to embed, filterable like the item."""
    metadata: dict[str, Any] = {
        "kind": VECTOR,
        "key": key,
        "item": item_id(namespace, key),
        "path": path,
        **namespace_fields(namespace),
        **value_fields(value),
    }
    return DocumentInfo(id=vector_id(namespace, key, path), text=text, metadata=metadata)


def with_expiry(metadata: Mapping[str, Any], now: float) -> dict[str, Any]:
    """An item document's metadata with its TTL restarted at ``now`` (refresh on read)."""
    refreshed = dict(metadata)
    refreshed["expires_at"] = now + float(metadata["ttl"]) * 60
    return refreshed


def expired(metadata: Mapping[str, Any], now: float) -> bool:
    """Whether an item's TTL has run out."""
    expires = metadata.get("expires_at")
    return expires is not None and expires <= now


def live_filter(now: float) -> dict[str, Any]:
    """Items without a TTL, or whose TTL has not run out."""
    return {"$or": [{"expires_at": {"$exists": False}}, {"expires_at": {"$gt": now}}]}


def search_filter(
    kind: str, prefix: Sequence[str], filter: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The moss filter for documents of ``kind`` under ``prefix`` whose value matches ``filter``."""
    parts: dict[str, Any] = {"kind": kind}
    parts.update({f"ns{i}": label for i, label in enumerate(prefix)})
    if filter:
        parts["$and"] = translate_filter(filter)
    return parts


def translate_filter(filter: Mapping[str, Any], prefix: str = _FIELD) -> list[dict[str, Any]]:
    """A LangGraph value filter as moss conditions on the ``v.`` fields (all must hold)."""
    if not isinstance(filter, Mapping):
        raise InvalidArgumentError(f"filter must be a dict of value fields, got {filter!r}")
    conditions: list[dict[str, Any]] = []
    for name, wanted in filter.items():
        field = f"{prefix}{name}"
        if isinstance(wanted, Mapping) and any(str(op).startswith("$") for op in wanted):
            unknown = set(wanted) - FILTER_OPERATORS
            if unknown:
                raise InvalidArgumentError(
                    f"filter on {name!r} uses {sorted(unknown)}; MossStore filters support "
                    f"{sorted(FILTER_OPERATORS)} (as LangGraph's InMemoryStore)"
                )
            conditions.append({field: dict(wanted)})
        elif isinstance(wanted, Mapping):
            conditions.extend(translate_filter(wanted, f"{field}."))
        elif isinstance(wanted, _SCALARS):
            conditions.append({field: wanted})
        else:
            raise InvalidArgumentError(
                f"filter on {name!r} compares with a {type(wanted).__name__}; MossStore filters "
                "take scalars, nested dicts of scalars, or $eq/$ne/$gt/$gte/$lt/$lte conditions"
            )
    return conditions


def _when(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, tz=timezone.utc)


def to_item(metadata: Mapping[str, Any]) -> Item:
    """The LangGraph item an item document stores."""
    return Item(
        value=copy_json(metadata["value"]),
        key=metadata["key"],
        namespace=tuple(metadata["ns"]),
        created_at=_when(metadata["created_at"]),
        updated_at=_when(metadata["updated_at"]),
    )


def to_search_item(metadata: Mapping[str, Any], score: float | None) -> SearchItem:
    """A search hit: the stored item, with its similarity when the search had a query."""
    return SearchItem(
        namespace=tuple(metadata["ns"]),
        key=metadata["key"],
        value=copy_json(metadata["value"]),
        created_at=_when(metadata["created_at"]),
        updated_at=_when(metadata["updated_at"]),
        score=score,
    )


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    if condition.match_type not in ("prefix", "suffix"):
        raise InvalidArgumentError(f"unknown namespace match type {condition.match_type!r}")
    return all(want in ("*", got) for want, got in zip(path, part, strict=True)) if path else True


def list_namespaces(
    namespaces: Iterable[tuple[str, ...]],
    conditions: Sequence[MatchCondition] | None,
    max_depth: int | None,
    limit: int,
    offset: int,
) -> list[tuple[str, ...]]:
    """The distinct namespaces that match every condition, cut at ``max_depth``, sorted."""
    found = {
        namespace if max_depth is None else namespace[:max_depth]
        for namespace in namespaces
        if all(_matches(condition, namespace) for condition in conditions or ())
    }
    return sorted(found)[offset : offset + limit]


def prefix_of(conditions: Sequence[MatchCondition] | None) -> list[str]:
    """The literal leading labels every listed namespace must have (to narrow the read)."""
    for condition in conditions or ():
        if condition.match_type == "prefix":
            labels: list[str] = []
            for label in condition.path:
                if label == "*":
                    break
                labels.append(label)
            return labels
    return []
