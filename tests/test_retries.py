"""@atomic(retries=n): serialization failures and deadlocks run the function again.

The conflict is real: two SERIALIZABLE transfers read both balances, then write
them. On PostgreSQL the second writer waits for the first one's row lock and
then fails with SQLSTATE 40001; on SQLite an atomic block takes the write lock
first (BEGIN IMMEDIATE), so the second transfer waits and nothing conflicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import TransactionError, atomic, on_commit
from flash_db.testing import assert_num_queries
from tests.models import BankAccount, User


class Transfers:
    """Two transfers that run their reads, wait for each other, then write (first attempt)."""

    def __init__(self, postgres: bool) -> None:
        # On SQLite the second block cannot begin before the first commits: no rendezvous.
        self.barrier = asyncio.Barrier(2) if postgres else None
        self.attempts = 0
        self.committed: list[str] = []

    async def transfer(self, db: AsyncSession, source: int, target: int, amount: int) -> None:
        self.attempts += 1
        first = self.attempts <= 2
        a = await BankAccount.objects.get(db, pk=source)
        b = await BankAccount.objects.get(db, pk=target)
        on_commit(db, lambda: self.committed.append(f"{source}->{target}"))
        if first and self.barrier is not None:
            await asyncio.wait_for(self.barrier.wait(), 10)
        # Rows written in key order: the second writer waits for the first, no deadlock.
        new = {source: a.balance - amount, target: b.balance + amount}
        for pk in sorted(new):
            await BankAccount.objects.filter(pk=pk).update(db, balance=new[pk])


async def _accounts(database: flash_db.Database) -> tuple[int, int]:
    async with database.session() as db:
        a = await BankAccount.objects.create(db, owner="a", balance=100)
        b = await BankAccount.objects.create(db, owner="b", balance=100)
        return a.pk, b.pk


async def _balances(database: flash_db.Database) -> list[int]:
    async with database.session() as db:
        return list(
            await BankAccount.objects.order_by("pk").values_list("balance", flat=True).fetch(db)
        )


async def _run_both(
    database: flash_db.Database,
    work: Callable[[AsyncSession, int, int, int], Awaitable[None]],
    a: int,
    b: int,
) -> list[BaseException | None]:
    async def one(source: int, target: int, amount: int) -> None:
        async with database.session() as db:
            await work(db, source, target, amount)

    return list(await asyncio.gather(one(a, b, 30), one(b, a, 10), return_exceptions=True))


async def test_conflicting_serializable_transfers_both_succeed_with_retries(
    database: flash_db.Database,
) -> None:
    a, b = await _accounts(database)
    transfers = Transfers(database.backend == "postgresql")
    work = atomic(isolation_level="SERIALIZABLE", retries=3)(transfers.transfer)
    results = await _run_both(database, work, a, b)
    assert results == [None, None]
    assert await _balances(database) == [80, 120]  # 200 in all, both transfers applied
    assert sorted(transfers.committed) == sorted([f"{a}->{b}", f"{b}->{a}"])
    if database.backend == "postgresql":
        assert transfers.attempts == 3  # one attempt failed; its callback never ran


async def test_without_retries_one_transfer_raises_the_serialization_error(
    database: flash_db.Database,
) -> None:
    a, b = await _accounts(database)
    transfers = Transfers(database.backend == "postgresql")
    work = atomic(isolation_level="SERIALIZABLE")(transfers.transfer)
    results = await _run_both(database, work, a, b)
    balances = await _balances(database)
    assert sum(balances) == 200
    if database.backend == "sqlite":
        assert results == [None, None]  # serialized by the write lock
        assert balances == [80, 120]
        return
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], DBAPIError)
    assert flash_db.transaction.is_retryable(errors[0])
    assert "could not serialize" in str(errors[0])
    assert len(transfers.committed) == 1
    assert transfers.attempts == 2
    assert balances in ([70, 130], [110, 90])  # exactly one transfer applied


@pytest.mark.postgres_only
@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_retries_run_at_most_n_more_times_then_raise(
    database: flash_db.Database, sqlstate: str
) -> None:
    if database.backend != "postgresql":
        pytest.skip("SQLSTATEs raised by PostgreSQL")
    calls: list[int] = []

    @atomic(retries=2)
    async def failing(db: AsyncSession) -> None:
        calls.append(1)
        await User.objects.create(db, name=f"n{len(calls)}", email=f"{len(calls)}@x")
        on_commit(db, lambda: calls.append(100))
        await db.execute(
            text(f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; END $$")
        )

    async with database.session() as db:
        with pytest.raises(DBAPIError, match="conflict"):
            await failing(db)
        assert calls == [1, 1, 1]  # three attempts, no callback
        assert await User.objects.count(db) == 0  # each attempt rolled back


async def test_other_errors_are_not_retried(db: AsyncSession) -> None:
    calls: list[int] = []

    @atomic(retries=3)
    async def duplicate(db: AsyncSession) -> None:
        calls.append(1)
        await User.objects.create(db, name="x", email="dup@x")
        await User.objects.create(db, name="y", email="dup@x")

    with pytest.raises(IntegrityError):
        await duplicate(db)
    assert calls == [1]
    assert await User.objects.count(db) == 0


async def test_retries_only_at_the_outermost_block(db: AsyncSession) -> None:
    @atomic(retries=1)
    async def inner(db: AsyncSession) -> None:
        await User.objects.create(db, name="x", email="x@x")  # pragma: no cover

    with pytest.raises(TransactionError, match="only the outermost block can be run again"):
        async with atomic(db), assert_num_queries(db, 0):
            await inner(db)
    with pytest.raises(TypeError, match="cannot retry an `async with` block"):
        atomic(db, retries=2)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="retries=-1"):
        atomic(retries=-1)


async def test_a_successful_first_attempt_runs_once(db: AsyncSession) -> None:
    @atomic(retries=3)
    async def create(db: AsyncSession, name: str) -> int:
        user = await User.objects.create(db, name=name, email=f"{name}@x")
        return int(user.pk)

    pk = await create(db, "a")
    assert (await User.objects.get(db, pk=pk)).name == "a"
