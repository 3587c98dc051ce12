"""CRUDRouter: an APIRouter with list/get/create/update/replace/delete routes for one model.

The list route takes only allow-listed query parameters: ``limit``/``offset``,
``order_by`` over the allowed order fields, ``fields`` (a subset of the read
schema) and lookup filters (``name__icontains=jo``, ``id__in=1,2``) over the
allowed filter fields; anything else is a 400. The filters are documented in
OpenAPI one by one but parsed here, only those a request sends, each with a
Pydantic ``TypeAdapter`` for its column type: a bad value is a 422 in FastAPI's
shape, and a request does not pay for the dozens of filters it does not use.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, get_origin

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter, create_model
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, RelationshipProperty

from flash_db import Model, QuerySet, ValidationError, atomic
from flash_db.fields import pk_name
from flash_db.query import MAX_ROWS
from flash_db.transaction import in_atomic
from flash_db_fastapi.dependencies import ReadSession, Session
from flash_db_fastapi.errors import ErrorMessage, constraint_violation, validation_detail
from flash_db_fastapi.schemas import NO_NUL, ModelField, model_fields, model_schema

__all__ = ["MAX_FILTER_LENGTH", "MAX_ORDER_TERMS", "ROUTES", "CRUDRouter"]

ROUTES = ("list", "get", "create", "update", "replace", "delete")
_RESERVED = ("limit", "offset", "order_by", "fields", "total")
#: The most ``order_by`` terms a list request may give (SPEC §7).
MAX_ORDER_TERMS = 8
#: The longest value a text filter may have, in characters (SPEC §7).
MAX_FILTER_LENGTH = 1000
_TEXT_LOOKUPS = (
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "in",
)
_ORDERED_LOOKUPS = ("exact", "gt", "gte", "lt", "lte", "in", "range")
_ORDERED_TYPES = (int, float, Decimal, dt.date, dt.datetime, dt.time, dt.timedelta)
_LIST_LOOKUPS = ("in", "range")

_NOT_FOUND = {"model": ErrorMessage, "description": "No row has this primary key."}
_CONFLICT = {
    "model": ErrorMessage,
    "description": "A unique or foreign-key constraint was violated.",
}
_BAD_QUERY = {
    "model": ErrorMessage,
    "description": "An unknown query parameter, field or ordering was given.",
}


_Dependencies = Sequence[params.Depends] | Mapping[str, Sequence[params.Depends]]


@dataclass(frozen=True, slots=True)
class _Filter:
    """One filter query parameter (``name__icontains``) and how to convert its value."""

    param: str
    lookup: str
    python_type: Any
    adapter: TypeAdapter[Any]

    @property
    def many(self) -> bool:
        """Whether the value is a comma-separated list (``in``, ``range``)."""
        return self.lookup in _LIST_LOOKUPS

    def openapi(self) -> dict[str, Any]:
        """Return the OpenAPI parameter object of this filter."""
        schema: dict[str, Any]
        if self.many:
            count = "two" if self.lookup == "range" else "comma-separated"
            schema = {"type": "string"}
            description = f"Filter: {self.lookup} ({count} values, e.g. 1,5)."
        elif self.lookup == "isnull":
            schema = {"type": "boolean"}
            description = "Filter: true for rows where the field is null, false otherwise."
        else:
            schema = self.adapter.json_schema()
            schema.pop("title", None)
            if "$defs" in schema or "$ref" in schema:
                schema = {"type": "string"}
            description = f"Filter: {self.lookup}."
        return {
            "name": self.param,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema,
        }

    def convert(self, raw: str) -> Any:
        """Return the Python value of the query-string value ``raw``; raise Pydantic's error."""
        if self.lookup == "isnull":
            return _BOOL.validate_strings(raw)
        if not self.many:
            return self.adapter.validate_strings(raw)
        items = [item.strip() for item in raw.split(",")] if raw else []
        if self.lookup == "range" and len(items) != 2:
            raise ValueError(f"A range takes two comma-separated values, got {len(items)}.")
        return [self.adapter.validate_strings(item) for item in items]


_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def _lookups_for(python_type: Any, nullable: bool) -> tuple[str, ...]:
    """Return the lookups that make sense for a column of ``python_type``."""
    if python_type is str:
        lookups: tuple[str, ...] = _TEXT_LOOKUPS
    elif python_type is bool:
        lookups = ("exact",)
    elif isinstance(python_type, type) and issubclass(python_type, _ORDERED_TYPES):
        lookups = _ORDERED_LOOKUPS
    elif (
        isinstance(python_type, type) and issubclass(python_type, enum.Enum | uuid.UUID)
    ) or get_origin(python_type) is Literal:
        lookups = ("exact", "in")
    else:
        return ()  # JSON, binary and array columns are not filterable from a query string
    return (*lookups, "isnull") if nullable else lookups


def _resolve_path(model: type[Model[Any]], path: str) -> ModelField:
    """Return the column a field path names (``"name"``, ``"author__name"``)."""
    current = model
    parts = path.split("__")
    for part in parts[:-1]:
        mapper: Mapper[Any] = current.__mapper__
        relation = mapper.relationships.get(part)
        if not isinstance(relation, RelationshipProperty):
            choices = ", ".join(sorted(mapper.relationships.keys()))
            raise ValueError(
                f"CRUDRouter({model.__name__}) cannot resolve {part!r} in {path!r}: it is "
                f"not a relation of {current.__name__}. Choices are: {choices}."
            )
        current = relation.mapper.class_
    fields = model_fields(current)
    name = pk_name(current) if parts[-1] == "pk" else parts[-1]
    if name not in fields:
        raise ValueError(
            f"CRUDRouter({model.__name__}) got unknown field {path!r}. "
            f"Choices on {current.__name__} are: {', '.join(sorted(fields))}."
        )
    return fields[name]


class CRUDRouter(APIRouter):
    """An ``APIRouter`` with list/get/create/update (PATCH)/replace (PUT)/delete routes.

    ``filter_fields``/``order_fields`` allow-list what clients may filter and
    order on (default: the read schema's columns; relation paths such as
    ``"author__name"`` only when listed). ``dependencies`` is a list for every
    route, or a mapping from route name (``"create"``, ...) to a list.
    ``count=False`` leaves the list route's ``total`` out (``null``) unless a
    request asks for it with ``?total=true``; ``?total=false`` skips it per request.
    ``read_from="replica"`` serves the list and get routes from read replicas
    (``ReadSession``); the default, ``"primary"``, lets a client read its own writes.
    """

    def __init__(
        self,
        model: type[Model[Any]],
        *,
        prefix: str,
        tags: list[str | enum.Enum] | None = None,
        read_schema: type[BaseModel] | None = None,
        create_schema: type[BaseModel] | None = None,
        update_schema: type[BaseModel] | None = None,
        filter_fields: Iterable[str] | None = None,
        order_fields: Iterable[str] | None = None,
        default_limit: int = 50,
        max_limit: int = 200,
        routes: Iterable[str] = ROUTES,
        dependencies: Sequence[params.Depends]
        | Mapping[str, Sequence[params.Depends]]
        | None = None,
        count: bool = True,
        read_from: Literal["primary", "replica"] = "primary",
    ) -> None:
        if read_from not in ("primary", "replica"):
            raise ValueError(
                f"CRUDRouter got read_from={read_from!r}; choices are 'primary' (a client "
                "reads its own writes) and 'replica' (GET routes on read replicas)."
            )
        #: The session the GET routes read with: ``Session`` (primary) or ``ReadSession``.
        self.read_session: Any = ReadSession if read_from == "replica" else Session
        routes = tuple(routes)
        unknown = [name for name in routes if name not in ROUTES]
        if unknown:
            raise ValueError(
                f"CRUDRouter got unknown route {unknown[0]!r}. Choices are: {', '.join(ROUTES)}."
            )
        if not 1 <= default_limit <= max_limit:
            raise ValueError(
                f"CRUDRouter needs 1 <= default_limit <= max_limit, "
                f"got default_limit={default_limit!r}, max_limit={max_limit!r}."
            )
        per_route: Mapping[str, Sequence[params.Depends]] = {}
        shared: Sequence[params.Depends] | None = None
        if isinstance(dependencies, Mapping):
            bad = [name for name in dependencies if name not in ROUTES]
            if bad:
                raise ValueError(
                    f"CRUDRouter dependencies name unknown route {bad[0]!r}. "
                    f"Choices are: {', '.join(ROUTES)}."
                )
            per_route = dependencies
        else:
            shared = dependencies
        super().__init__(prefix=prefix, tags=tags or [model.__name__], dependencies=shared)
        self.model = model
        self.read_schema = read_schema or model_schema(model, "read")
        self.create_schema = create_schema or model_schema(model, "create")
        self.update_schema = update_schema or model_schema(model, "update")
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.count = count
        self.fields = model_fields(model)
        self.pk_name = pk_name(model)
        self.pk_type = self.fields[self.pk_name].python_type
        read_columns = [name for name in self.read_schema.model_fields if name in self.fields]
        self.filter_fields = self._allow_list(filter_fields, read_columns, "filter_fields")
        self.order_fields = self._allow_list(order_fields, read_columns, "order_fields")
        self.filters = self._declare_filters(explicit=filter_fields is not None)
        self.page_schema = _page_schema(self.read_schema)
        self._name = model.__name__.lower()
        adders: dict[str, Callable[[list[params.Depends]], None]] = {
            "list": self._add_list,
            "get": self._add_get,
            "create": self._add_create,
            "update": self._add_update,
            "replace": self._add_replace,
            "delete": self._add_delete,
        }
        for name in ROUTES:
            if name in routes:
                adders[name](list(per_route.get(name, ())))

    # -- configuration ---------------------------------------------------------------

    def _allow_list(
        self, given: Iterable[str] | None, default: list[str], label: str
    ) -> tuple[str, ...]:
        if given is None:
            return tuple(default)
        if isinstance(given, str):
            raise TypeError(f"CRUDRouter {label} takes a list of field names, got {given!r}.")
        names = tuple(given)
        for path in names:
            _resolve_path(self.model, path)
        return names

    def _declare_filters(self, *, explicit: bool) -> dict[str, _Filter]:
        filters: dict[str, _Filter] = {}
        adapters: dict[str, TypeAdapter[Any]] = {}
        for path in self.filter_fields:
            field = _resolve_path(self.model, path)
            # Integers keep their column's range (a larger one is a database error)
            # and text has no NUL; a text filter may be longer than the column.
            target: Any = field.python_type
            if target is int and field.constraints:
                target = Annotated[int, *field.constraints]
            elif target is str:
                target = Annotated[str, NO_NUL]
            adapters[path] = TypeAdapter(target)
            lookups = _lookups_for(field.python_type, field.nullable)
            if not lookups:
                if explicit:
                    raise ValueError(
                        f"CRUDRouter({self.model.__name__}) cannot filter on {path!r}: "
                        "its column type has no query-string lookups."
                    )
                continue
            for lookup in lookups:
                param = path if lookup == "exact" else f"{path}__{lookup}"
                if param in _RESERVED:
                    raise ValueError(
                        f"CRUDRouter({self.model.__name__}) filter {param!r} clashes with the "
                        f"query parameter of the same name ({', '.join(_RESERVED)})."
                    )
                filters[param] = _Filter(param, lookup, field.python_type, adapters[path])
        return filters

    # -- shared pieces ---------------------------------------------------------------

    def _declare(
        self,
        endpoint: Callable[..., Any],
        *,
        pk: bool,
        body: type[BaseModel] | None = None,
        session: Any = Session,
    ) -> None:
        """Give ``endpoint`` the signature FastAPI reads: the pk path parameter, body, session."""
        parameters = [self._pk_parameter()] if pk else []
        if body is not None:
            parameters.append(
                inspect.Parameter(
                    "body", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[body, Body()]
                )
            )
        parameters.append(
            inspect.Parameter("db", inspect.Parameter.KEYWORD_ONLY, annotation=session)
        )
        endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # read by FastAPI

    def _pk_parameter(self) -> inspect.Parameter:
        return inspect.Parameter(
            self.pk_name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                self.pk_type,
                Path(description=f"The {self.model.__name__}'s primary key."),
                *self.fields[self.pk_name].constraints,
            ],
        )

    async def _get_object(self, db: AsyncSession, pk: Any) -> Model:
        try:
            return await self.model.objects.get(db, pk=pk)
        except self.model.DoesNotExist:
            raise HTTPException(404, f"{self.model.__name__} not found.") from None

    async def _save(self, db: AsyncSession, obj: Model[Any]) -> None:
        """Write ``obj``, turning validation and constraint errors into 422/409 responses.

        A row deleted since it was read (a concurrent DELETE) is a 404.
        """
        try:
            await obj.save(db)
        except self.model.DoesNotExist:
            raise HTTPException(404, f"{self.model.__name__} not found.") from None
        except ValidationError as error:
            raise HTTPException(422, validation_detail(error)) from None
        except IntegrityError as error:
            violation = constraint_violation(error)
            raise HTTPException(violation.status_code, violation.message()) from None

    def _json(self, obj: Model[Any], status_code: int) -> Response:
        """Serialize ``obj`` with the read schema, once (FastAPI would validate it again)."""
        body = self.read_schema.model_validate(obj).model_dump_json()
        return Response(body, status_code=status_code, media_type="application/json")

    def _route_name(self, action: str) -> str:
        return f"{action}_{self._name}"

    # -- routes ------------------------------------------------------------------------

    def _add_list(self, dependencies: list[params.Depends]) -> None:
        router = self
        order_help = ", ".join(self.order_fields) or "(none)"
        read_fields = list(self.read_schema.model_fields)
        parameters = [
            inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
            inspect.Parameter("db", inspect.Parameter.KEYWORD_ONLY, annotation=self.read_session),
            inspect.Parameter(
                "limit",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    int,
                    Query(ge=0, le=self.max_limit, description="Page size (0: count only)."),
                ],
                default=self.default_limit,
            ),
            inspect.Parameter(
                "offset",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[int, Query(ge=0, le=MAX_ROWS, description="Rows to skip.")],
                default=0,
            ),
            inspect.Parameter(
                "order_by",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    str | None,
                    Query(
                        description=(
                            "Comma-separated fields, '-' for descending "
                            f"(e.g. -{self.order_fields[0] if self.order_fields else 'id'}). "
                            f"Allowed: {order_help}."
                        )
                    ),
                ],
                default=None,
            ),
            inspect.Parameter(
                "total",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    bool,
                    Query(
                        description=(
                            "Count the matching rows (false: total is null, one query less)."
                        )
                    ),
                ],
                default=self.count,
            ),
            inspect.Parameter(
                "fields",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    str | None,
                    Query(
                        description=(
                            "Comma-separated subset of fields to return. "
                            f"Allowed: {', '.join(read_fields)}."
                        )
                    ),
                ],
                default=None,
            ),
        ]

        async def list_objects(**kwargs: Any) -> Response:
            request: Request = kwargs.pop("request")
            db: AsyncSession = kwargs.pop("db")
            limit: int = kwargs.pop("limit")
            offset: int = kwargs.pop("offset")
            order_by: str | None = kwargs.pop("order_by")
            fields: str | None = kwargs.pop("fields")
            counted: bool = kwargs.pop("total")
            lookups = router._filters_from(request)
            ordering = router._ordering(order_by)
            include = router._include(fields)
            qs = router.model.objects.filter(**lookups)
            total, rows = await router._page(db, qs, ordering, offset, limit, counted)
            page = router.page_schema(
                items=[router.read_schema.model_validate(row) for row in rows],
                total=total,
                limit=limit,
                offset=offset,
            )
            dump_include: dict[str, Any] | None = None
            if include is not None:
                dump_include = {
                    "items": {"__all__": include},
                    "total": True,
                    "limit": True,
                    "offset": True,
                }
            return Response(
                page.model_dump_json(include=dump_include), media_type="application/json"
            )

        list_objects.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # FastAPI reads the declared parameters from it
        self.add_api_route(
            "",
            list_objects,
            methods=["GET"],
            name=self._route_name("list"),
            summary=f"List {self.model.__name__} rows",
            response_model=self.page_schema,
            responses={400: _BAD_QUERY},
            dependencies=dependencies,
            openapi_extra={"parameters": [spec.openapi() for spec in self.filters.values()]},
        )

    async def _page(
        self,
        db: AsyncSession,
        qs: QuerySet[Any],
        ordering: list[str],
        offset: int,
        limit: int,
        counted: bool,
    ) -> tuple[int | None, list[Any]]:
        """Return the count (or None) and the page's rows, read from one snapshot.

        With both queries, they run in one transaction: REPEATABLE READ on
        PostgreSQL (one snapshot for both statements), SQLite's transaction
        otherwise (it reads one snapshot). Inside a request's own ``atomic`` block
        they join it.
        """
        page = qs.order_by(*ordering)[offset : offset + limit]
        if not counted:
            return None, await page.fetch(db) if limit else []
        if not limit:
            return await qs.count(db), []
        if in_atomic(db):
            return await qs.count(db), await page.fetch(db)
        level = "REPEATABLE READ" if db.get_bind().dialect.name == "postgresql" else None
        async with atomic(db, isolation_level=level):
            return await qs.count(db), await page.fetch(db)

    def _filters_from(self, request: Request) -> dict[str, Any]:
        """Return the lookups a request's filter parameters ask for; 400/422 on bad ones."""
        lookups: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, raw in request.query_params.items():
            if name in _RESERVED:
                continue
            spec = self.filters.get(name)
            if spec is None:
                raise HTTPException(400, self._unknown_parameter(name))
            if spec.python_type is str and len(raw) > MAX_FILTER_LENGTH:
                raise HTTPException(
                    400,
                    f"The filter {name!r} takes at most {MAX_FILTER_LENGTH} characters, "
                    f"got {len(raw)}.",
                )
            try:
                lookups[name] = spec.convert(raw)
            except PydanticValidationError as error:
                errors.extend(
                    {**detail, "loc": ["query", name], "input": raw}
                    for detail in error.errors(include_url=False, include_context=False)
                )
            except ValueError as error:
                errors.append(
                    {"type": "value_error", "loc": ["query", name], "msg": str(error), "input": raw}
                )
        if errors:
            raise RequestValidationError(errors)
        return lookups

    def _unknown_parameter(self, name: str) -> str:
        field, sep, lookup = name.rpartition("__")
        if sep and field in self.filter_fields:
            choices = sorted(
                spec.lookup for spec in self.filters.values() if spec.param.startswith(f"{field}__")
            )
            return (
                f"Unsupported lookup {lookup!r} on {field!r}. "
                f"Choices are: exact, {', '.join(choices)}."
            )
        return (
            f"Unknown query parameter {name!r}. Choices are: limit, offset, order_by, fields, "
            f"and filters on {', '.join(self.filter_fields) or '(none)'} "
            "(as field or field__lookup)."
        )

    def _ordering(self, order_by: str | None) -> list[str]:
        items = [item.strip() for item in (order_by or "").split(",", MAX_ORDER_TERMS + 1)]
        items = [item for item in items if item]
        if len(items) > MAX_ORDER_TERMS:
            raise HTTPException(
                400, f"order_by takes at most {MAX_ORDER_TERMS} comma-separated fields."
            )
        ordering: list[str] = []
        seen: set[str] = set()
        for item in items:
            name = item[1:] if item.startswith("-") else item
            if name not in self.order_fields:
                shown = name if len(name) <= 60 else name[:57] + "..."
                raise HTTPException(
                    400,
                    f"Cannot order by {shown!r}. "
                    f"Choices are: {', '.join(self.order_fields) or '(none)'}.",
                )
            if name in seen:
                raise HTTPException(400, f"order_by names {name!r} twice.")
            seen.add(name)
            ordering.append(item)
        # The primary key last: a stable order, so that pages neither skip nor repeat rows.
        if not {item.lstrip("-") for item in ordering} & {"pk", self.pk_name}:
            ordering.append("pk")
        return ordering

    def _include(self, fields: str | None) -> set[str] | None:
        if fields is None:
            return None
        names = {name.strip() for name in fields.split(",") if name.strip()}
        known = self.read_schema.model_fields
        unknown = sorted(names - set(known))
        if unknown:
            raise HTTPException(
                400, f"Unknown field {unknown[0]!r} in fields. Choices are: {', '.join(known)}."
            )
        return names

    def _add_get(self, dependencies: list[params.Depends]) -> None:
        router = self

        async def get_object(**kwargs: Any) -> Response:
            obj = await router._get_object(kwargs["db"], kwargs[router.pk_name])
            return router._json(obj, 200)

        self._declare(get_object, pk=True, session=self.read_session)
        self.add_api_route(
            f"/{{{self.pk_name}}}",
            get_object,
            methods=["GET"],
            name=self._route_name("get"),
            summary=f"Get one {self.model.__name__}",
            response_model=self.read_schema,
            responses={404: _NOT_FOUND},
            dependencies=dependencies,
        )

    def _add_create(self, dependencies: list[params.Depends]) -> None:
        router = self

        async def create_object(**kwargs: Any) -> Response:
            body: BaseModel = kwargs["body"]
            obj = router.model(**body.model_dump(exclude_unset=True, by_alias=False))
            await router._save(kwargs["db"], obj)
            return router._json(obj, 201)

        self._declare(create_object, pk=False, body=self.create_schema)
        self.add_api_route(
            "",
            create_object,
            methods=["POST"],
            status_code=201,
            name=self._route_name("create"),
            summary=f"Create a {self.model.__name__}",
            response_model=self.read_schema,
            responses={409: _CONFLICT},
            dependencies=dependencies,
        )

    def _add_update(self, dependencies: list[params.Depends]) -> None:
        router = self

        async def update_object(**kwargs: Any) -> Response:
            body: BaseModel = kwargs["body"]
            db: AsyncSession = kwargs["db"]
            obj = await router._get_object(db, kwargs[router.pk_name])
            for name, value in body.model_dump(exclude_unset=True, by_alias=False).items():
                setattr(obj, name, value)
            await router._save(db, obj)
            return router._json(obj, 200)

        self._declare(update_object, pk=True, body=self.update_schema)
        self.add_api_route(
            f"/{{{self.pk_name}}}",
            update_object,
            methods=["PATCH"],
            name=self._route_name("update"),
            summary=f"Update some fields of a {self.model.__name__}",
            response_model=self.read_schema,
            responses={404: _NOT_FOUND, 409: _CONFLICT},
            dependencies=dependencies,
        )

    def _add_replace(self, dependencies: list[params.Depends]) -> None:
        router = self
        schema_fields = self.create_schema.model_fields

        async def replace_object(**kwargs: Any) -> Response:
            body: BaseModel = kwargs["body"]
            db: AsyncSession = kwargs["db"]
            obj = await router._get_object(db, kwargs[router.pk_name])
            values = body.model_dump(exclude_unset=True, by_alias=False)
            for name, info in schema_fields.items():
                field = router.fields.get(name)
                if name in values or field is None:
                    continue
                # An omitted field goes back to its default, unless the default is
                # computed (then only the column default knows it: keep the value).
                if info.default is not None or field.nullable:
                    values[name] = info.default
            values.pop(router.pk_name, None)  # the path names the row; a body pk is ignored
            for name, value in values.items():
                setattr(obj, name, value)
            await router._save(db, obj)
            return router._json(obj, 200)

        self._declare(replace_object, pk=True, body=self.create_schema)
        self.add_api_route(
            f"/{{{self.pk_name}}}",
            replace_object,
            methods=["PUT"],
            name=self._route_name("replace"),
            summary=f"Replace a {self.model.__name__}",
            response_model=self.read_schema,
            responses={404: _NOT_FOUND, 409: _CONFLICT},
            dependencies=dependencies,
        )

    def _add_delete(self, dependencies: list[params.Depends]) -> None:
        router = self

        # A model that keeps Model.delete() is deleted with one statement
        # (QuerySet.delete(): the same soft delete and signals); an overridden
        # delete() runs on the loaded object.
        one_statement = router.model.delete is Model.delete

        async def delete_object(**kwargs: Any) -> Response:
            db: AsyncSession = kwargs["db"]
            try:
                if one_statement:
                    pk = kwargs[router.pk_name]
                    if not await router.model.objects.filter(pk=pk).delete(db):
                        raise HTTPException(404, f"{router.model.__name__} not found.")
                else:
                    obj = await router._get_object(db, kwargs[router.pk_name])
                    await obj.delete(db)
            except IntegrityError:
                # Whether the database refused the DELETE (a foreign key) or the UPDATE
                # that SQLAlchemy sends to detach children (NOT NULL), the row is in use.
                raise HTTPException(
                    409,
                    f"The {router.model.__name__} is still referenced by other rows "
                    "and cannot be deleted.",
                ) from None
            return Response(status_code=204)

        self._declare(delete_object, pk=True)
        self.add_api_route(
            f"/{{{self.pk_name}}}",
            delete_object,
            methods=["DELETE"],
            status_code=204,
            response_class=Response,
            name=self._route_name("delete"),
            summary=f"Delete a {self.model.__name__}",
            responses={404: _NOT_FOUND, 409: _CONFLICT},
            dependencies=dependencies,
        )


_pages: dict[type[BaseModel], type[BaseModel]] = {}


def _page_schema(read_schema: type[BaseModel]) -> type[BaseModel]:
    """Return the list envelope for ``read_schema``: items, total, limit, offset."""
    page = _pages.get(read_schema)
    if page is None:
        page = create_model(
            f"{read_schema.__name__}Page",
            __doc__="One page of results and the total count.",
            items=(list[read_schema], ...),  # type: ignore[valid-type]  # built at runtime
            total=(int | None, ...),
            limit=(int, ...),
            offset=(int, ...),
        )
        _pages[read_schema] = page
    return page
