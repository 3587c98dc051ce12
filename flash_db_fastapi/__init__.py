"""FastAPI integration for Flash DB: lifespan, sessions, schemas, errors, CRUD routers."""

from flash_db_fastapi.dependencies import ReadSession, Session, get_db, get_read_db
from flash_db_fastapi.docs import offline_docs
from flash_db_fastapi.errors import add_exception_handlers, exception_handlers
from flash_db_fastapi.lifespan import flash_lifespan
from flash_db_fastapi.routers import CRUDRouter
from flash_db_fastapi.schemas import ModelSchema, model_schema

__all__ = [
    "CRUDRouter",
    "ModelSchema",
    "ReadSession",
    "Session",
    "add_exception_handlers",
    "exception_handlers",
    "flash_lifespan",
    "get_db",
    "get_read_db",
    "model_schema",
    "offline_docs",
]
