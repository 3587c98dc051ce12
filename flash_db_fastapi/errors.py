"""Exception handlers that turn Flash DB, database and request errors into JSON error responses.

Every error a request can meet is answered here, as JSON: Flash DB's errors
(404, 409, 422, 400), database errors (409/422 for constraints, 503 with
``Retry-After`` when no connection could be had or the database timed out),
FastAPI's request validation errors (422), ``HTTPException`` and, last, any
other exception (a JSON 500; the server still logs it). Bodies are
``{"detail": ...}`` unless ``add_exception_handlers(app, render=fn)`` shapes
them. Messages are built here from the error's structure (model name, column
names, constraint kind), never copied from the database: a driver message can
hold SQL and row values, and neither may reach a client. What a client sent is
echoed only when it is small and exactly representable in JSON (never ``NaN``,
``1e400`` or a lone surrogate), and a ``FieldError`` lists only the fields the
route's response model exposes.
"""

from __future__ import annotations

import json
import logging
import math
import re
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flash_db import (
    DatabaseUnavailable,
    DoesNotExist,
    FieldError,
    InvalidValue,
    Model,
    MultipleObjectsReturned,
    ValidationError,
)

__all__ = [
    "ConstraintViolation",
    "ErrorMessage",
    "Render",
    "add_exception_handlers",
    "constraint_violation",
    "exception_handlers",
    "json_safe",
    "validation_detail",
]

_log = logging.getLogger("flash_db_fastapi")


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


Render = Callable[[Request, int, Any], Any]
"""``render(request, status_code, detail)`` returns the JSON body of an error response."""

Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

# Echoed input larger than this (as JSON) is left out of a 422 body.
_ECHO_LIMIT = 1000
_SHOWN_NAME = 60


def json_safe(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` as something ``json.dumps(allow_nan=False)`` encodes to UTF-8.

    Lone surrogates become U+FFFD, non-finite floats ``None``, other objects their
    ``str()``; nesting deeper than 32 levels is cut.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if value.isascii():
            return value
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if _depth > 32:
        return None
    if isinstance(value, dict):
        return {str(json_safe(str(k))): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item, _depth + 1) for item in value]
    return json_safe(str(value), _depth + 1)


def _echoable(value: Any) -> bool:
    """Return whether ``value`` is small and exactly representable in JSON (safe to echo)."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return False
    return len(text) <= _ECHO_LIMIT


def _shown(name: str) -> str:
    """Return a client-sent name shortened for a message (the repr escapes what it must)."""
    return name if len(name) <= _SHOWN_NAME else name[: _SHOWN_NAME - 3] + "..."


def _respond(
    render: Render | None,
    request: Request,
    status_code: int,
    detail: Any,
    headers: dict[str, str] | None = None,
) -> Response:
    body = render(request, status_code, detail) if render is not None else {"detail": detail}
    return JSONResponse(json_safe(body), status_code=status_code, headers=headers)


def _request_errors(errors: typing.Sequence[Any]) -> list[dict[str, Any]]:
    """Return FastAPI's 422 entries without input that cannot (or should not) be echoed."""
    detail = []
    for error in errors:
        if not isinstance(error, dict):
            detail.append({"type": "value_error", "loc": [], "msg": json_safe(str(error))})
            continue
        entry: dict[str, Any] = {
            "type": json_safe(error.get("type", "value_error")),
            "loc": [json_safe(part) for part in error.get("loc", ())],
            "msg": json_safe(error.get("msg", "")),
        }
        if "input" in error and _echoable(error["input"]):
            entry["input"] = error["input"]
        ctx = error.get("ctx")
        if isinstance(ctx, dict):
            safe_ctx = {str(k): json_safe(v) for k, v in ctx.items()}
            if _echoable(safe_ctx):
                entry["ctx"] = safe_ctx
        detail.append(entry)
    return detail


def _exposed_fields(request: Request) -> set[str]:
    """Return the field names the route's response model shows (items of a page included)."""
    route = request.scope.get("route")
    found: set[str] = set()
    pending = [getattr(route, "response_model", None)]
    seen = 0
    while pending and seen < 16:
        seen += 1
        model = pending.pop()
        if model is None:
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, info in model.model_fields.items():
                found.add(name)
                pending.append(info.annotation)
            continue
        pending.extend(typing.get_args(model))
    return found


def _field_error_message(request: Request, error: FieldError) -> str:
    name = _shown(str(error.name))
    if error.kind in ("lookup", "transform"):
        choices = list(error.choices)  # lookup names, not fields
    else:
        exposed = _exposed_fields(request)
        choices = [choice for choice in error.choices if choice in exposed]
    message = f"Cannot resolve {error.kind} {name!r}."
    if choices:
        message += f" Choices are: {', '.join(choices)}."
    return message


def _handlers(render: Render | None) -> dict[int | type[Exception], Handler]:
    """Return the exception handlers, rendering bodies with ``render`` (None: ``{"detail"}``)."""

    async def does_not_exist(request: Request, error: Exception) -> Response:
        return _respond(render, request, 404, f"{_error_model(error)} not found.")

    async def multiple_objects(request: Request, error: Exception) -> Response:
        detail = f"More than one {_error_model(error)} matched; expected exactly one."
        return _respond(render, request, 409, detail)

    async def integrity_error(request: Request, error: IntegrityError) -> Response:
        violation = constraint_violation(error)
        return _respond(render, request, violation.status_code, violation.message())

    async def validation_error(request: Request, error: ValidationError) -> Response:
        return _respond(render, request, 422, validation_detail(error))

    async def field_error(request: Request, error: FieldError) -> Response:
        # Built from the error's parts: the model's own choices may name fields
        # (a password hash) that this route never shows.
        return _respond(render, request, 400, _field_error_message(request, error))

    async def invalid_value(request: Request, error: InvalidValue) -> Response:
        detail = f"Invalid value for {_shown(str(error.field))!r}: expected {error.expected}."
        return _respond(render, request, 422, detail)

    async def database_unavailable(request: Request, error: Exception) -> Response:
        retry_after = getattr(error, "retry_after", 1)
        return _respond(
            render,
            request,
            503,
            "The database is unavailable or busy; try again shortly.",
            {"Retry-After": str(retry_after)},
        )

    async def data_error(request: Request, error: Exception) -> Response:
        # SQLSTATE class 22: a value the column's type cannot take (out of range, ...).
        return _respond(render, request, 422, "A value does not fit its field's type or range.")

    async def database_error(request: Request, error: Exception) -> Response:
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            # The server ended the connection mid-statement (a restart, a terminated
            # backend); SQLAlchemy's asyncpg adapter reports that as a bare DBAPIError.
            # The pool replaces the connection: a later try can succeed.
            return await database_unavailable(request, error)
        _log.error("Database error in %s %s", request.method, request.url.path, exc_info=error)
        return _respond(render, request, 500, "Internal server error.")

    async def request_validation(request: Request, error: RequestValidationError) -> Response:
        return _respond(render, request, 422, _request_errors(error.errors()))

    async def http_exception(request: Request, error: StarletteHTTPException) -> Response:
        headers = dict(error.headers) if error.headers else None
        if error.status_code in (204, 304) or error.status_code < 200:
            return Response(status_code=error.status_code, headers=headers)
        return _respond(render, request, error.status_code, error.detail, headers)

    async def server_error(request: Request, error: Exception) -> Response:
        # Starlette logs the exception and re-raises it after this response.
        return _respond(render, request, 500, "Internal server error.")

    return {
        DoesNotExist: does_not_exist,
        MultipleObjectsReturned: multiple_objects,
        IntegrityError: integrity_error,
        ValidationError: validation_error,
        FieldError: field_error,
        InvalidValue: invalid_value,
        DatabaseUnavailable: database_unavailable,
        sa_exc.TimeoutError: database_unavailable,
        sa_exc.OperationalError: database_unavailable,
        sa_exc.InterfaceError: database_unavailable,
        sa_exc.DataError: data_error,
        sa_exc.DBAPIError: database_error,
        RequestValidationError: request_validation,
        StarletteHTTPException: http_exception,
        Exception: server_error,
    }


exception_handlers: dict[int | type[Exception], Handler] = _handlers(None)
"""``FastAPI(exception_handlers=exception_handlers)``: every error as a JSON response.

Flash DB's errors as 404/409/422/400, ``DatabaseUnavailable`` (and the pool's
timeout, a lost connection, a busy SQLite) as 503 with ``Retry-After``,
request validation errors as 422 without echoing what JSON cannot hold, and any
other exception as a JSON 500.
"""


def add_exception_handlers(app: FastAPI, *, render: Render | None = None) -> None:
    """Register Flash DB's exception handlers on ``app``.

    ``render(request, status_code, detail)`` returns the JSON body of every error
    response (default ``{"detail": detail}``); the status and headers stay.
    """
    for exc_class, handler in _handlers(render).items():
        app.add_exception_handler(exc_class, handler)
