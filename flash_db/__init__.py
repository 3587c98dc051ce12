"""Flash DB: an async, Django-like ORM on SQLAlchemy 2, made for FastAPI."""

from flash_db.config import database_url
from flash_db.database import (
    Database,
    close_db,
    create_all,
    drop_all,
    get_database,
    get_db,
    init_db,
    session,
)
from flash_db.exceptions import (
    DatabaseUnavailable,
    DoesNotExist,
    FieldError,
    FlashDBError,
    InvalidValue,
    MultipleObjectsReturned,
    RelationNotLoaded,
    SessionBusy,
    TransactionError,
    ValidationError,
)
from flash_db.expressions import (
    Avg,
    Count,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from flash_db.loading import Prefetch, prefetch_related_objects
from flash_db.manager import Manager
from flash_db.models import AwareDateTime, Model, SoftDeleteMixin, TimestampMixin
from flash_db.query import QuerySet
from flash_db.related import RelatedManager
from flash_db.transaction import atomic, on_commit

__all__ = [
    "Avg",
    "AwareDateTime",
    "Count",
    "Database",
    "DatabaseUnavailable",
    "DoesNotExist",
    "Exists",
    "F",
    "FieldError",
    "FlashDBError",
    "InvalidValue",
    "Manager",
    "Max",
    "Min",
    "Model",
    "MultipleObjectsReturned",
    "OuterRef",
    "Prefetch",
    "Q",
    "QuerySet",
    "RelatedManager",
    "RelationNotLoaded",
    "SessionBusy",
    "SoftDeleteMixin",
    "Subquery",
    "Sum",
    "TimestampMixin",
    "TransactionError",
    "ValidationError",
    "Value",
    "atomic",
    "close_db",
    "create_all",
    "database_url",
    "drop_all",
    "get_database",
    "get_db",
    "init_db",
    "on_commit",
    "prefetch_related_objects",
    "session",
]
