"""Models only the FastAPI tests use (tables prefixed ``api_``)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Interval,
    LargeBinary,
    Numeric,
    String,
    Text,
    Time,
    Uuid,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from flash_db import AwareDateTime, Model, TimestampMixin, ValidationError


class Kind(enum.Enum):
    CHECKING = "checking"
    SAVINGS = "savings"


class Wallet(Model, TimestampMixin):
    """A wallet whose ``clean()`` refuses a negative balance."""

    __tablename__ = "api_wallets"
    __table_args__ = (CheckConstraint("length(name) > 0", name="api_wallet_name_not_empty"),)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    balance: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("0"))
    kind: Mapped[Kind] = mapped_column(Enum(Kind, name="api_kind"), default=Kind.CHECKING)
    note: Mapped[str | None] = mapped_column(Text, default=None)

    def clean(self) -> None:
        """Refuse a negative balance."""
        if self.balance is not None and self.balance < 0:
            raise ValidationError({"balance": "The balance may not be negative."})


class WalletEntry(Model):
    """A ledger entry whose foreign key is checked at COMMIT (DEFERRABLE INITIALLY DEFERRED)."""

    __tablename__ = "api_wallet_entries"
    account_id: Mapped[int] = mapped_column(
        ForeignKey("api_wallets.id", deferrable=True, initially="DEFERRED")
    )
    amount: Mapped[int] = mapped_column(default=0)


class Everything(Model):
    """One column of every type model_schema maps."""

    __tablename__ = "api_everything"
    short: Mapped[str] = mapped_column(String(20))
    long: Mapped[str] = mapped_column(Text)
    number: Mapped[int]
    big: Mapped[int] = mapped_column(BigInteger)
    ratio: Mapped[float] = mapped_column(Float)
    money: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    flag: Mapped[bool] = mapped_column(default=True)
    day: Mapped[dt.date] = mapped_column(Date)
    moment: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    aware: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    clock: Mapped[dt.time] = mapped_column(Time)
    span: Mapped[dt.timedelta] = mapped_column(Interval)
    token: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[Kind] = mapped_column(Enum(Kind, name="api_kind_everything"))
    letter: Mapped[str] = mapped_column(Enum("a", "b", name="api_letter"))
    data: Mapped[Any] = mapped_column(JSON)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    maybe: Mapped[str | None] = mapped_column(String(10))


class Ledger(Model):
    """A model whose delete() is its own (archives instead): the CRUDRouter must call it."""

    __tablename__ = "api_ledgers"
    name: Mapped[str] = mapped_column(String(50))
    archived: Mapped[bool] = mapped_column(default=False)

    async def delete(self, db: AsyncSession) -> None:
        """Archive the row instead of deleting it."""
        self.archived = True
        await self.save(db)
