"""The ``MetaData`` that every Flash DB model's table belongs to (``Model.metadata``)."""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

#: Every model's table: what ``create_all()``/``drop_all()`` and migrations act on.
metadata = MetaData()
