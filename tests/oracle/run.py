"""Run generated queries through Django and Flash DB on one database and compare the answers.

``await check(url, engine, n, seed)`` seeds the oracle tables, runs ``n``
queries through both ORMs, shrinks every difference to the smallest query that
still shows it, and sorts each into a class: agreement, a deliberate difference
(``tests.oracle.classes.DELIBERATE``: proven by running Django's spelling of
Flash DB's rule and getting Flash DB's answer), a known open one
(``KNOWN_OPEN``) or a new one, named by the tags of its smallest query.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Float, Integer, Numeric, Text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import flash_db
from tests.oracle import classes, data
from tests.oracle.generator import (
    PLAIN,
    XOR_PROMOTE,
    Features,
    Generator,
    Mode,
    Query,
    smaller,
)
from tests.oracle.schema import MODELS

# -- answers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One ORM's answer to a query: a normalized value, or the error it raised."""

    value: Any = None
    error: str | None = None


def norm(value: Any) -> Any:
    """Return ``value`` in a form that compares equal across ORMs when it means the same.

    Numbers (int, float, Decimal) compare by value to 9 significant digits; datetimes
    in UTC; dicts as sorted items. Nothing else is folded: a different answer stays
    different.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        if isinstance(value, int) and abs(value) < 2**53:
            return ("n", value)
        # Rounded first: a float sum that is 49 to 9 digits (48.99999999999999, the
        # order of the additions) is the 49 another database's sum gives.
        number = float(f"{float(value):.9g}")
        if math.isfinite(number) and number == int(number) and abs(number) < 2**53:
            return ("n", int(number))
        return ("n", f"{number:.9g}")
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return ("dt", aware.astimezone(dt.UTC).isoformat())
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return tuple(sorted((k, norm(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(norm(v) for v in value)
    return ("?", repr(value))


def row_of(query: Query, row: Any) -> Any:
    """Return one result row as plain data (a model row: its pk and annotations)."""
    if query.shape() == "model":
        return norm((row.pk, *(getattr(row, a) for a in query.attrs())))
    if query.shape() == "dict":
        return norm(dict(row))
    if query.shape() == "tuple":
        return norm(tuple(row))
    return norm(row)


def result_of(query: Query, raw: Any) -> Any:
    """Return a terminal's result as plain data; unordered rows as a sorted multiset."""
    kind = query.terminal.kind
    if kind == "rows":
        rows = [row_of(query, r) for r in raw]
        return tuple(rows) if query.ordered else tuple(sorted(rows, key=repr))
    if kind == "first":
        return None if raw is None else row_of(query, raw)
    if kind == "aggregate":
        return norm(dict(raw))
    return norm(raw)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


# -- the two ORMs -----------------------------------------------------------------------


class DjangoRunner:
    """Django on one database, in a thread of its own (Django's ORM is synchronous)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-oracle")
        self.alias = ""
        self.fold_alias = ""
        self.ns: dict[str, Any] = {}
        self.fold_ns: dict[str, Any] = {}

    def _setup(self) -> None:
        from tests.oracle import django_side

        self.alias = django_side.alias_for(self.url)
        self.ns = {**django_side.namespace(self.alias), **_LITERALS}
        if self.url.startswith("sqlite"):
            self.fold_alias = django_side.alias_for(self.url, "fold")
            django_side.fold_case(self.fold_alias)
            self.fold_ns = {**django_side.namespace(self.fold_alias), **_LITERALS}

    def _answer(self, query: Query, mode: Mode) -> Answer:
        ns = self.fold_ns if mode.sqlite_fold and self.fold_ns else self.ns
        try:
            raw = eval(query.django_code(mode), ns)
            return Answer(result_of(query, raw))
        except Exception as exc:
            return Answer(error=_error(exc))

    def _batch(self, queries: list[tuple[Query, Mode]]) -> list[Answer]:
        if not self.ns:
            self._setup()
        return [self._answer(q, m) for q, m in queries]

    async def answers(self, queries: Iterable[tuple[Query, Mode]]) -> list[Answer]:
        """Return Django's answers to ``queries``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._batch, list(queries))

    async def close(self) -> None:
        """Close Django's connection (in its thread) and the thread."""
        from tests.oracle import django_side

        if self.alias:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, django_side.close, self.alias)
            if self.fold_ns:
                await loop.run_in_executor(self.executor, django_side.close, self.fold_alias)
        self.executor.shutdown()


class FlashRunner:
    """Flash DB on one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.ns: dict[str, Any] = {**MODELS, **_LITERALS, **_flash_names()}

    async def answer(self, query: Query) -> Answer:
        """Return Flash DB's answer to ``query``."""
        async with self.sessions() as db:
            try:
                return Answer(result_of(query, await self._run(db, query)))
            except Exception as exc:
                return Answer(error=_error(exc))

    async def _run(self, db: AsyncSession, query: Query) -> Any:
        qs = eval(query.chain(), self.ns)
        kind = query.terminal.kind
        if kind == "rows":
            return await qs.fetch(db)
        if kind == "aggregate":
            named = {k: eval(e.code, self.ns) for k, e in query.terminal.named}
            return await qs.aggregate(db, **named)
        return await getattr(qs, kind)(db)


_LITERALS: dict[str, Any] = {
    "Decimal": Decimal,
    "date": dt.date,
    "datetime": dt.datetime,
    "UTC": dt.UTC,
}


def _flash_names() -> dict[str, Any]:
    names = {"Q", "F", "Count", "Sum", "Avg", "Min", "Max", "Exists", "OuterRef"}
    names.update(classes.OPTIONAL_NAMES)
    found = {n: getattr(flash_db, n) for n in names if hasattr(flash_db, n)}
    # Cast()'s targets, as the generator spells them (Django's namespace has its fields).
    found.update(Integer=Integer, Float=Float, Text=Text, Numeric=Numeric, Date=Date)
    return found


async def probe_features(engine: AsyncEngine) -> Features:
    """Return what the Flash DB under test offers of the names being added (issue 14)."""
    names = frozenset(n for n in classes.OPTIONAL_NAMES if hasattr(flash_db, n))
    methods = frozenset(m for m in classes.OPTIONAL_METHODS if hasattr(flash_db.QuerySet, m))
    operators = set()
    f: Any = flash_db.F("pages")  # Any: the operators are probed, not known to exist
    q: Any = flash_db.Q(pk=1)
    probes: dict[str, Callable[[], object]] = {
        "%": lambda: f % 2,
        "**": lambda: f**2,
        "^": lambda: q ^ q,
    }
    for op, probe in probes.items():
        try:
            probe()
            operators.add(op)
        except TypeError:
            pass
    transforms = set()
    sessions = async_sessionmaker(engine)
    for part in classes.OPTIONAL_TRANSFORMS:
        async with sessions() as db:
            try:
                await MODELS["Book"].objects.filter(**{f"created__{part}": 1}).count(db)
                transforms.add(part)
            except Exception:
                continue
    return Features(names, frozenset(transforms), methods, frozenset(operators))


# -- comparing and classifying -------------------------------------------------------------


def verdict(django: Answer, flash: Answer) -> str:
    """Return agree, both-raise, mismatch, flash-error or django-error."""
    if django.error and flash.error:
        return "both-raise"
    if flash.error:
        return "flash-error"
    if django.error:
        return "django-error"
    return "agree" if django.value == flash.value else "mismatch"


@dataclass
class Finding:
    """A difference: its class, the smallest query showing it and both answers."""

    klass: str
    kind: str  # deliberate, known-open, new
    verdict: str
    query: Query
    django: Answer
    flash: Answer


@dataclass
class Report:
    """What one run on one database found."""

    backend: str
    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # class -> queries
    findings: dict[str, Finding] = field(default_factory=dict)  # class -> smallest example
    #: Known open classes this run did not hit: does their reproduction still differ?
    unseen_known: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0

    def agreement(self) -> float:
        """Return the share of queries that agreed (or raised on both sides)."""
        same = self.counts["agree"] + self.counts["both-raise"]
        deliberate = sum(
            n
            for k, n in self.counts.items()
            if k in self.findings and self.findings[k].kind == "deliberate"
        )
        return (same + deliberate) / self.total if self.total else 1.0

    def new_classes(self) -> list[str]:
        """Return the classes that are neither deliberate nor known open."""
        return sorted(k for k, f in self.findings.items() if f.kind == "new")

    def fixed_known(self) -> list[str]:
        """Return the known open classes not hit whose reproduction now agrees (fixed)."""
        return sorted(k for k, differs in self.unseen_known.items() if not differs)

    def failing(self) -> int:
        """Return how many queries differ outside the deliberate list (or Flash DB raised)."""
        return sum(
            self.counts[k] for k, f in self.findings.items() if f.kind in ("new", "known-open")
        )


async def check(
    url: str,
    engine: AsyncEngine,
    n: int,
    seed: int,
    *,
    shrink_steps: int = 100_000,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Seed the tables behind ``engine``, run ``n`` queries through both ORMs, classify."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    backend = engine.dialect.name
    await data.seed(engine)
    features = await probe_features(engine)
    queries = list(Generator(seed, features).queries(n))
    django = DjangoRunner(url)
    flash = FlashRunner(engine)
    report = Report(backend, total=n)
    try:
        django_answers = await django.answers((q, PLAIN) for q in queries)
        failing: list[tuple[Query, str]] = []
        for query, dj in zip(queries, django_answers, strict=True):
            fl = await flash.answer(query)
            v = verdict(dj, fl)
            if v in ("agree", "both-raise"):
                report.counts[v] += 1
            else:
                failing.append((query, v))
        budget = [shrink_steps]  # candidate queries the shrinker may still try (all failures)
        signatures: dict[str, Finding] = {}
        for query, v in failing:
            finding = await _classify(
                query, v, backend, django, flash, budget=budget, seen=signatures
            )
            signatures.setdefault(
                _signature(v, finding.flash if v != "django-error" else finding.django), finding
            )
            report.counts[finding.klass] += 1
            old = report.findings.get(finding.klass)
            if old is None or finding.query.size() < old.query.size():
                report.findings[finding.klass] = finding
            if log:
                log(f"{backend}: {finding.kind} {finding.klass}")
        for known in classes.KNOWN_OPEN:
            if backend in known.backends and known.name not in report.counts:
                differs = await reproduction_differs(known.reproduction, django, flash)
                report.unseen_known[known.name] = differs
    finally:
        await django.close()
    report.seconds = loop.time() - start
    return report


async def _both(django: DjangoRunner, flash: FlashRunner, query: Query) -> tuple[Answer, Answer]:
    (dj,) = await django.answers([(query, PLAIN)])
    return dj, await flash.answer(query)


def _signature(v: str, answer: Answer) -> str:
    """Return what a smaller query must keep to show the same difference."""
    if v in ("flash-error", "django-error"):
        return classes.name_of(frozenset(), v, answer.error)
    return v


async def _classify(
    query: Query,
    v: str,
    backend: str,
    django: DjangoRunner,
    flash: FlashRunner,
    *,
    budget: list[int],
    seen: dict[str, Finding],
) -> Finding:
    dj, fl = await _both(django, flash, query)
    if v in ("mismatch", "flash-error"):
        name = await _deliberate(query, backend, django, fl)
        if name is not None:
            return Finding(name, "deliberate", v, query, dj, fl)
        if v == "mismatch" and "multi-join-aggregate" in query.tags():
            return Finding(classes.DJANGO_MULTIPLIES, "django-limit", v, query, dj, fl)
        if v == "mismatch" and backend == "sqlite" and _same_rows(dj, fl, query):
            return Finding(classes.FLOAT_TIES, "django-limit", v, query, dj, fl)
    signature = _signature(v, fl if v != "django-error" else dj)
    small = seen.get(signature) if v != "mismatch" else None
    if budget[0] > 0 and not (small is not None and small.query.size() <= query.size()):
        query, dj, fl = await _shrink(query, signature, backend, django, flash, budget)
    if v == "django-error":
        return Finding(signature, "django-raises", v, query, dj, fl)
    tags = query.tags()
    for known in classes.KNOWN_OPEN:
        if known.matches(tags, v, backend, fl.error):
            return Finding(known.name, known.kind, v, query, dj, fl)
    return Finding(classes.name_of(tags, v, fl.error), "new", v, query, dj, fl)


async def _shrink(
    query: Query,
    signature: str,
    backend: str,
    django: DjangoRunner,
    flash: FlashRunner,
    budget: list[int],
) -> tuple[Query, Answer, Answer]:
    """Return the smallest query found that still differs the same way."""
    best = query
    dj, fl = await _both(django, flash, query)
    tries = 150  # per failing query; ``budget`` bounds the whole run
    progress = True
    while progress and tries > 0 and budget[0] > 0:
        progress = False
        for candidate in smaller(best):
            tries -= 1
            budget[0] -= 1
            if tries <= 0 or budget[0] <= 0:
                break
            cdj, cfl = await _both(django, flash, candidate)
            v = verdict(cdj, cfl)
            if v in ("agree", "both-raise"):
                continue
            if _signature(v, cfl if v != "django-error" else cdj) != signature:
                continue
            # A smaller query whose difference a deliberate class explains shows
            # another difference: keep shrinking the one we have.
            if (v == "mismatch" and "multi-join-aggregate" in candidate.tags()) or (
                v in ("mismatch", "flash-error")
                and await _deliberate(candidate, backend, django, cfl)
            ):
                continue
            best, dj, fl = candidate, cdj, cfl
            progress = True
            break
    return best, dj, fl


async def _deliberate(
    query: Query, backend: str, django: DjangoRunner, flash: Answer
) -> str | None:
    """Return the deliberate class(es) that explain Flash DB's answer to ``query``, if any."""
    applicable = [k for k in classes.DELIBERATE if k.applies(query, backend)]
    modes = []
    # Each difference alone, then each combination of them (smallest first): a
    # query may show two at once, and a rewrite that does not apply to it (the
    # ^ rule's pk__in around a lookup whose row the call shares) must stay out.
    for size in range(1, len(applicable) + 1):
        for chosen in itertools.combinations(applicable, size):
            parts = [k.mode(query) for k in chosen]
            combined = Mode(
                true_div=any(m.true_div for m in parts),
                like_regex=any(m.like_regex for m in parts),
                sqlite_fold=any(m.sqlite_fold for m in parts),
                exists_form=next((m.exists_form for m in parts if m.exists_form), None),
                xor_join=next((m.xor_join for m in parts if m.xor_join), None),
            )
            modes.append(([k.name for k in chosen], combined))
            if combined.xor_join:
                names = [k.name for k in chosen]
                modes.append((names, replace(combined, xor_to_one=True)))
                if query.model in XOR_PROMOTE:
                    promote = XOR_PROMOTE[query.model]
                    modes.append((names, replace(combined, xor_join=None, xor_promote=promote)))
    for names, mode in modes:
        (alt,) = await django.answers([(query, mode)])
        if alt.error is None and alt.value == flash.value:
            return " + ".join(names)
        if alt.error and flash.error and _same_database_error(alt.error, flash.error):
            # Django, spelling Flash DB's rule, gets the database's error Flash DB got
            # (PostgreSQL's numeric overflow of a Cast() over every related row).
            return " + ".join(names)
    return None


def _same_rows(django: Answer, flash: Answer, query: Query) -> bool:
    """Return whether two ordered answers are the same rows, ordered by a float aggregate."""
    if "order:float-aggregate" not in query.tags():
        return False
    if not isinstance(django.value, tuple) or not isinstance(flash.value, tuple):
        return False
    return sorted(django.value, key=repr) == sorted(flash.value, key=repr)


def _same_database_error(django: str, flash: str) -> bool:
    """Return whether two errors are the database's same complaint (not an ORM's own)."""
    name, _, message = django.partition(": ")
    if name not in ("DataError", "ProgrammingError", "OperationalError", "IntegrityError"):
        return False  # an error of Django's own (FieldError, ValueError, ...)
    message = message.strip()
    return bool(message) and message in flash


_ANNOTATION = re.compile(r"annotate\((\w+)=")


def _split(code: str) -> tuple[str, str, str]:
    """Split a reproduction into (chain, terminal kind, aggregate arguments)."""
    if code.endswith(".count()"):
        return code[: -len(".count()")], "count", ""
    match = re.search(r"\.aggregate\((.*)\)$", code)
    if match:
        return code[: match.start()], "aggregate", match.group(1)
    return code, "rows", ""


def _plain_rows(code: str, rows: Any) -> Any:
    names = _ANNOTATION.findall(code)
    out = []
    for row in rows:
        if hasattr(row, "pk"):
            out.append(norm((row.pk, *(getattr(row, n) for n in names))))
        else:
            out.append(norm(dict(row) if isinstance(row, dict) else row))
    return tuple(sorted(out, key=repr))


async def reproduction_differs(code: str, django: DjangoRunner, flash: FlashRunner) -> bool:
    """Return whether a known open class's reproduction still answers differently."""
    chain, kind, args = _split(code)

    def on_django() -> Answer:
        if not django.ns:
            django._setup()
        try:
            if kind == "count":
                return Answer(norm(eval(code, django.ns)))
            if kind == "aggregate":
                return Answer(norm(eval(code, django.ns)))
            return Answer(_plain_rows(code, list(eval(chain, django.ns))))
        except Exception as exc:
            return Answer(error=_error(exc))

    loop = asyncio.get_running_loop()
    dj = await loop.run_in_executor(django.executor, on_django)
    async with flash.sessions() as db:
        try:
            qs = eval(chain, flash.ns)
            if kind == "count":
                fl = Answer(norm(await qs.count(db)))
            elif kind == "aggregate":
                named = eval(f"dict({args})", flash.ns)
                fl = Answer(norm(await qs.aggregate(db, **named)))
            else:
                fl = Answer(_plain_rows(code, await qs.fetch(db)))
        except Exception as exc:
            fl = Answer(error=_error(exc))
    return verdict(dj, fl) not in ("agree", "both-raise")


def format_report(reports: list[Report]) -> str:
    """Return the agreement table and one reproduction per class."""
    lines = []
    for r in reports:
        lines.append(
            f"\n== {r.backend}: {r.total} queries in {r.seconds:.1f}s, "
            f"{100 * r.agreement():.1f}% agree with Django "
            "(deliberate differences counted as agreeing)"
        )
        lines.append(f"{'class':<58} {'kind':<11} {'queries':>7} {'share':>6}")
        order = sorted(r.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for klass, count in order:
            kind = r.findings[klass].kind if klass in r.findings else "same"
            lines.append(f"{klass:<58} {kind:<11} {count:>7} {100 * count / r.total:>5.1f}%")
        for name, differs in sorted(r.unseen_known.items()):
            state = "still differs (not hit by this run)" if differs else "FIXED: now agrees"
            kind = next((k.kind for k in classes.KNOWN_OPEN if k.name == name), "known-open")
            lines.append(f"{name:<58} {kind:<11} {0:>7}   {state}")
        for klass, finding in sorted(r.findings.items()):
            lines.append(f"\n-- {klass} ({finding.kind}, {finding.verdict}) on {r.backend}")
            lines.append(f"   Django:   {finding.query.django_code()}")
            lines.append(f"     -> {_show(finding.django)}")
            lines.append(f"   Flash DB: {finding.query.flash_code()}")
            lines.append(f"     -> {_show(finding.flash)}")
    return "\n".join(lines)


def _show(answer: Answer) -> str:
    text = answer.error if answer.error else repr(answer.value)
    return text if len(text) < 400 else text[:400] + "..."
