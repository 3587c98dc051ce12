"""Exception handlers that turn Flash DB and database errors into JSON error responses.

Every body is ``{"detail": ...}``. Messages are built here from the error's
structure (model name, column names, constraint kind), never copied from the
database: a driver message can hold SQL and row values, and neither may reach
a client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from flash_db import (
    DoesNotExist,
    FieldError,
    Model,
    MultipleObjectsReturned,
    ValidationError,
)

__all__ = [
    "ConstraintViolation",
    "ErrorMessage",
    "add_exception_handlers",
    "constraint_violation",
    "exception_handlers",
    "validation_detail",
]


class ErrorMessage(BaseModel):
    """The body of a 400/404/409 error response."""

    detail: str


@dataclass(frozen=True, slots=True)
class ConstraintViolation:
    """What a database constraint error says, without its SQL or values."""

    kind: str  # unique_violation, foreign_key_violation, not_null_violation, check_violation
    table: str | None
    fields: tuple[str, ...]
    constraint: str | None
    statement_table: str | None = None  # the table the failed statement wrote to
    deleting: bool = False

    @property
    def status_code(self) -> int:
        """409 for conflicts with other rows; 422 for a row that is invalid on its own."""
        return 422 if self.kind in ("not_null_violation", "check_violation") else 409

    def message(self) -> str:
        """Return a client-safe sentence naming the model and the fields, never the values."""
        subject = _model_name(self.table)
        fields = ", ".join(self.fields)
        if self.kind == "unique_violation":
            if fields:
                return f"A {subject} with this {fields} already exists."
            return f"A {subject} with these values already exists."
        if self.kind == "foreign_key_violation":
            if self.deleting:
                target = _model_name(self.statement_table)
                return f"The {target} is still referenced by other rows and cannot be deleted."
            if fields:
                return f"The {subject} {fields} refers to a row that does not exist."
            return f"The {subject} refers to a row that does not exist."
        if self.kind == "not_null_violation":
            return f"The {subject} {fields or 'field'} may not be null."
        if self.kind == "check_violation":
            name = f" {self.constraint}" if self.constraint else ""
            return f"The {subject} violates the check constraint{name}."
        return f"The {subject} conflicts with a database constraint."


# PostgreSQL SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_KINDS = {
    "23505": "unique_violation",
    "23503": "foreign_key_violation",
    "23502": "not_null_violation",
    "23514": "check_violation",
}
# SQLite's messages: "UNIQUE constraint failed: users.email, users.name".
_SQLITE_KINDS = {
    "UNIQUE": "unique_violation",
    "FOREIGN KEY": "foreign_key_violation",
    "NOT NULL": "not_null_violation",
    "CHECK": "check_violation",
}
_SQLITE_MESSAGE = re.compile(r"(UNIQUE|FOREIGN KEY|NOT NULL|CHECK) constraint failed(?:: (.*))?")
_STATEMENT = re.compile(
    r"\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:\w+\.)?\"?(\w+)\"?", re.IGNORECASE
)
# PostgreSQL's DETAIL "Key (a, b)=(1, 2) already exists.": only the names are kept.
_PG_KEY = re.compile(r"Key \(([^)]*)\)=")


def constraint_violation(error: IntegrityError) -> ConstraintViolation:
    """Describe an ``IntegrityError`` from its driver diagnostics (asyncpg or SQLite)."""
    orig = error.orig
    driver_error = getattr(orig, "__cause__", None) or orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(driver_error, "sqlstate", None)
    if sqlstate is not None:
        violation = _from_postgresql(str(sqlstate), driver_error)
    else:
        violation = _from_sqlite(str(orig))
    # The statement is read for its verb and table only (its values never leave here).
    match = _STATEMENT.match(error.statement or "")
    if match is None:
        return violation
    verb, table = match.group(1).upper(), match.group(2)
    return replace(
        violation,
        table=violation.table or table,
        statement_table=table,
        deleting=verb.startswith("DELETE"),
    )


def _from_postgresql(sqlstate: str, driver_error: Any) -> ConstraintViolation:
    table = getattr(driver_error, "table_name", None)
    constraint = getattr(driver_error, "constraint_name", None)
    column = getattr(driver_error, "column_name", None)
    fields = (str(column),) if column else _constraint_columns(table, constraint)
    if not fields:
        match = _PG_KEY.search(str(getattr(driver_error, "detail", "") or ""))
        if match:
            fields = tuple(name.strip().strip('"') for name in match.group(1).split(","))
    return ConstraintViolation(
        kind=_PG_KINDS.get(sqlstate, "integrity_error"),
        table=str(table) if table else None,
        fields=fields,
        constraint=str(constraint) if constraint else None,
    )


def _from_sqlite(message: str) -> ConstraintViolation:
    match = _SQLITE_MESSAGE.search(message)
    if match is None:
        return ConstraintViolation("integrity_error", None, (), None)
    kind = _SQLITE_KINDS[match.group(1)]
    table: str | None = None
    fields: list[str] = []
    constraint: str | None = None
    target = match.group(2) or ""
    if kind == "check_violation":
        constraint = target.strip() or None
    else:
        for item in filter(None, (part.strip() for part in target.split(","))):
            table_name, _, column = item.rpartition(".")
            table = table_name or table
            fields.append(column)
    return ConstraintViolation(kind, table, tuple(fields), constraint)


def _constraint_columns(table: str | None, constraint: str | None) -> tuple[str, ...]:
    """Return the column names of a named constraint declared in the models' metadata."""
    if not table or not constraint:
        return ()
    found = Model.metadata.tables.get(str(table))
    if found is None:
        return ()
    for item in found.constraints:
        if item.name == constraint:
            return tuple(column.name for column in getattr(item, "columns", ()))
    return ()


def _model_name(table: str | None) -> str:
    if table:
        for mapper in Model.registry.mappers:
            if getattr(mapper.local_table, "name", None) == table:
                return mapper.class_.__name__
        return table
    return "row"


def _error_model(error: Exception) -> str:
    """Return the model a per-model exception belongs to (``User.DoesNotExist`` -> ``User``)."""
    owner, _, _ = type(error).__qualname__.rpartition(".")
    return owner.rsplit(".", 1)[-1] if owner else "Object"


def validation_detail(error: ValidationError) -> list[dict[str, Any]]:
    """Return FastAPI's 422 ``detail`` list for a ``ValidationError``: one entry per field."""
    detail: list[dict[str, Any]] = []
    for field, messages in error.errors.items():
        loc: list[str] = ["body"] if field == "__all__" else ["body", field]
        detail.append({"loc": loc, "msg": " ".join(messages), "type": "value_error"})
    return detail


async def _does_not_exist(request: Request, error: Exception) -> Response:
    return JSONResponse({"detail": f"{_error_model(error)} not found."}, status_code=404)


async def _multiple_objects(request: Request, error: Exception) -> Response:
    return JSONResponse(
        {"detail": f"More than one {_error_model(error)} matched; expected exactly one."},
        status_code=409,
    )


async def _integrity_error(request: Request, error: IntegrityError) -> Response:
    violation = constraint_violation(error)
    return JSONResponse({"detail": violation.message()}, status_code=violation.status_code)


async def _validation_error(request: Request, error: ValidationError) -> Response:
    return JSONResponse({"detail": validation_detail(error)}, status_code=422)


async def _field_error(request: Request, error: Exception) -> Response:
    # FieldError messages hold the client's name and the model's field names: no row data.
    return JSONResponse({"detail": str(error)}, status_code=400)


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

exception_handlers: dict[int | type[Exception], Handler] = {
    DoesNotExist: _does_not_exist,
    MultipleObjectsReturned: _multiple_objects,
    IntegrityError: _integrity_error,
    ValidationError: _validation_error,
    FieldError: _field_error,
}
"""``FastAPI(exception_handlers=exception_handlers)``: Flash DB errors as 404/409/422/400."""


def add_exception_handlers(app: FastAPI) -> None:
    """Register Flash DB's exception handlers on ``app``."""
    for exc_class, handler in exception_handlers.items():
        app.add_exception_handler(exc_class, handler)
