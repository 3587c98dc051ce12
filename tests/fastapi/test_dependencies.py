"""Session/get_db: one session per request, always closed, and atomic_requests."""

import asyncio
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db.transaction import in_atomic
from flash_db_fastapi import Session, add_exception_handlers, flash_lifespan
from flash_db_fastapi.lifespan import STATE_KEY, FlashState
from tests.fastapi.conftest import Serve
from tests.fastapi.models import Wallet, WalletEntry
from tests.models import User


def _app(url: str, *, atomic_requests: bool = False) -> FastAPI:
    app = FastAPI(lifespan=flash_lifespan(url, atomic_requests=atomic_requests))
    add_exception_handlers(app)
    return app


def _checked_out(app: FastAPI) -> int:
    state = getattr(app.state, STATE_KEY)
    assert isinstance(state, FlashState)
    return int(state.database.engine.pool.checkedout())  # type: ignore[attr-defined]  # QueuePool has it


async def test_one_session_per_request_shared_by_dependencies(
    backend_url: str, serve: Serve
) -> None:
    app = _app(backend_url)
    seen: list[AsyncSession] = []

    async def current_user_count(db: Session) -> int:
        seen.append(db)
        return await User.objects.count(db)

    @app.get("/")
    async def index(
        db: Session, count: Annotated[int, Depends(current_user_count)]
    ) -> dict[str, Any]:
        seen.append(db)
        return {"count": count, "atomic": in_atomic(db)}

    async with serve(app) as client:
        first = await client.get("/")
        second = await client.get("/")
        assert first.json() == {"count": 0, "atomic": False}
        assert second.status_code == 200
        assert seen[0] is seen[1]  # one session for the handler and its dependency
        assert seen[2] is not seen[0]  # and a new one for the next request
        assert _checked_out(app) == 0


async def test_without_lifespan_uses_the_configured_database(
    database: flash_db.Database, serve: Serve
) -> None:
    app = FastAPI()

    @app.get("/")
    async def index(db: Session) -> dict[str, Any]:
        return {"same_engine": db.get_bind().engine is database.engine.sync_engine}

    async with serve(app) as client:
        assert (await client.get("/")).json() == {"same_engine": True}
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool


async def test_pool_is_empty_after_500_requests_a_fifth_failing(
    database: flash_db.Database, backend_url: str, serve: Serve
) -> None:
    app = FastAPI(lifespan=flash_lifespan(backend_url, pool_size=10))
    add_exception_handlers(app)
    async with database.session() as db:
        await User.objects.create(db, name="Taken", email="taken@example.com")

    @app.get("/items/{n}")
    async def item(n: int, db: Session) -> dict[str, int]:
        count = await User.objects.count(db)
        if n % 5 == 0:
            kind = n // 5 % 4
            if kind == 0:
                raise HTTPException(400, "bad request on purpose")
            if kind == 1:
                await User.objects.get(db, email="missing@example.com")  # DoesNotExist -> 404
            if kind == 2:
                await User.objects.create(db, name="Dup", email="taken@example.com")  # -> 409
            raise RuntimeError("unhandled on purpose")  # -> 500
        return {"count": count}

    statuses: dict[int, int] = {}
    async with serve(app, raise_app_exceptions=False) as client:
        for start in range(0, 500, 10):  # 10 at a time: every pooled connection in use
            responses = await asyncio.gather(
                *(client.get(f"/items/{n}") for n in range(start, start + 10))
            )
            for response in responses:
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert _checked_out(app) == 0
    assert statuses == {200: 400, 400: 25, 404: 25, 409: 25, 500: 25}


async def test_cancelled_request_returns_its_connection(backend_url: str, serve: Serve) -> None:
    app = _app(backend_url, atomic_requests=True)
    started = asyncio.Event()

    @app.post("/slow")
    async def slow(db: Session) -> None:
        await Wallet.objects.create(db, name="never")
        started.set()
        await asyncio.sleep(30)

    async with serve(app) as client:
        request = asyncio.ensure_future(client.post("/slow"))
        await started.wait()
        assert _checked_out(app) == 1
        request.cancel()  # what a client disconnect does to the request task
        await asyncio.gather(request, return_exceptions=True)
        assert _checked_out(app) == 0
        async with flash_db.session() as db:
            assert await Wallet.objects.count(db) == 0


async def test_atomic_requests_commit_when_the_handler_returns(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url, atomic_requests=True)

    @app.post("/wallets", status_code=201)
    async def create(db: Session) -> dict[str, Any]:
        assert in_atomic(db)
        await Wallet.objects.create(db, name="a")
        await Wallet.objects.create(db, name="b")
        return {"ok": True}

    async with serve(app) as client:
        assert (await client.post("/wallets")).status_code == 201
    assert sorted(await Wallet.objects.values_list("name", flat=True).fetch(db)) == ["a", "b"]


async def test_atomic_requests_roll_back_on_http_exception(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url, atomic_requests=True)

    @app.post("/wallets")
    async def create(db: Session) -> None:
        await Wallet.objects.create(db, name="written")
        raise HTTPException(403, "changed my mind")

    async with serve(app) as client:
        response = await client.post("/wallets")
    assert response.status_code == 403
    assert await Wallet.objects.count(db) == 0


async def test_atomic_requests_roll_back_on_an_error(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url, atomic_requests=True)

    @app.post("/wallets")
    async def create(db: Session) -> None:
        await Wallet.objects.create(db, name="written")
        raise RuntimeError("boom")

    async with serve(app, raise_app_exceptions=False) as client:
        response = await client.post("/wallets")
    assert response.status_code == 500
    assert "boom" not in response.text
    assert await Wallet.objects.count(db) == 0


async def test_without_atomic_requests_each_write_commits(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url)

    @app.post("/wallets")
    async def create(db: Session) -> None:
        await Wallet.objects.create(db, name="written")
        raise HTTPException(403, "too late: autocommit")

    async with serve(app) as client:
        assert (await client.post("/wallets")).status_code == 403
    assert await Wallet.objects.count(db) == 1


async def test_atomic_requests_failed_commit_is_an_error_response(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    """The foreign key is DEFERRABLE INITIALLY DEFERRED: only COMMIT finds the missing row."""
    app = _app(backend_url, atomic_requests=True)

    @app.post("/entries", status_code=201)
    async def create(db: Session) -> dict[str, Any]:
        entry = await WalletEntry.objects.create(db, account_id=123456, amount=5)
        return {"id": entry.id}  # the handler succeeds; the COMMIT after it does not

    async with serve(app) as client:
        response = await client.post("/entries")
    assert response.status_code == 409
    assert "123456" not in response.text
    assert "INSERT" not in response.text
    assert await WalletEntry.objects.count(db) == 0
