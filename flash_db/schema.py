"""The ``MetaData`` that every Flash DB model's table belongs to (``Model.metadata``)."""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["NAMING_CONVENTION", "metadata"]

#: Names for the constraints and indexes a model does not name (Alembic's recommended
#: convention): every one has the same, stable name on every database, so that a
#: migration can drop or change it by name, also on SQLite and across databases.
#: CHECK constraints are left out: name them yourself (as Django requires).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Every model's table: what ``create_all()``/``drop_all()`` and migrations act on.
metadata = MetaData(naming_convention=NAMING_CONVENTION)
