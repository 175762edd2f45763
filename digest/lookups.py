"""``field__any=values``: the ``in`` lookup with the values sent as one array.

On PostgreSQL ``Paper.objects.filter(pk__any=ids)`` is ``id = ANY(%s::bigint[])`` with
one parameter, where ``pk__in`` writes one placeholder per value: with psycopg's
client-side binding (Django's default) each placeholder costs Python time to write, to
split out again and to quote, about 1 ms per thousand values, and every list length is
a new statement text. Integer values travel as one array literal. Elsewhere it is
``IN (...)``, as ``in``. Registered on every field (:class:`digest.apps.DigestConfig`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models.lookups import In

__all__ = ["AnyOf"]


class AnyOf(In):
    """``field__any=iterable``: ``field = ANY(array)`` on PostgreSQL, ``IN`` elsewhere.
    ``None`` values are ignored, as ``in`` ignores them; an empty iterable matches
    nothing. Raises ``ValueError``/``TypeError`` for a value the field cannot take."""

    lookup_name = "any"

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        if not self.rhs_is_direct_value():
            return self.as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection, prepared=True) for v in self.rhs]
        values = list(dict.fromkeys(v for v in values if v is not None))
        if not values:
            raise EmptyResultSet
        db_type = field.db_type(connection)  # a foreign key's is its target's
        if all(type(v) is int for v in values):
            # One string, written and quoted in C, instead of a list dumped item by item.
            array: Any = "{" + ",".join(map(str, values)) + "}"
        else:
            array = values
        return f"{lhs} = ANY(%s::{db_type}[])", [*lhs_params, array]
