"""Metadata filters: which documents a search may return. Filtering belongs to search, whatever the index."""

from __future__ import annotations

FilterValue = str | int | float | bool
Filter = dict[str, FilterValue | list[FilterValue]]


def matches(metadata: dict | None, filter: Filter) -> bool:
    """Every field must match: equal to the value, or to one of a list of values; a list field matches if any item does."""
    metadata = metadata or {}
    for field, wanted in filter.items():
        if field not in metadata:
            return False
        values = metadata[field] if isinstance(metadata[field], list) else [metadata[field]]
        accepted = wanted if isinstance(wanted, list) else [wanted]
        if not any(value == option and type(value) is type(option) for value in values for option in accepted):
            return False
    return True
