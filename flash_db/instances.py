"""Flash DB's instances: rows to objects, what was stored, what changed, and relations.

An instance of a Flash DB model is an ordinary instance of its SQLAlchemy-mapped
class that no SQLAlchemy ``Session`` holds (Django's object model, SPEC §2.1).
Its column values live in its ``__dict__``, where SQLAlchemy's attributes read
them; beside them Flash DB keeps two entries of its own:

- the *snapshot* (``"_flash_stored"``): ``(keys, values)``, the column values the
  row had when the object was loaded or last written. It is there exactly when
  the object's row is stored; ``save()`` compares against it to write only the
  changed fields. A column of the model missing from it was not loaded
  (``only()``/``defer()``), and reading it raises ``RelationNotLoaded``.
- the *loaded relations* (``"_flash_related"``): the names of relations whose
  value was loaded (``select_related``, ``prefetch_related``, ``fetch_related``) or
  assigned. A relation not in it holds nothing: reading it raises
  ``RelationNotLoaded`` (a to-one relation whose foreign key is NULL reads None).

:class:`Loader` builds instances from rows: one per model and column layout,
made once. An instance is made without ``__init__`` (as SQLAlchemy's own
loading makes them) and holds the row's values; its SQLAlchemy state
(``InstanceState``) is made by SQLAlchemy's ``ClassManager.setup_instance()``
the first time anything asks for it (:func:`state_on_demand`, the model's
``__getattr__``): an assignment, ``inspect(obj)``, ``session.add(obj)``.
Making it for every row would cost about 0.7 µs a row, more than reading the
row; most loaded objects are read and serialised, never assigned to.

:func:`construct` is the models' ``__init__``: column values given to the
constructor are stored as the object's values (a new object has no history to
keep); relations, and columns with attribute listeners (``@validates``), are
assigned through SQLAlchemy's attributes as usual.

Relationship reads go through :class:`RelationAttribute`, which Flash DB
installs as the class attribute of every relationship of its models once the
mappers are configured (:func:`instrument`), in place of SQLAlchemy's
``InstrumentedAttribute``; on the class it returns SQLAlchemy's attribute, so
``Post.author`` in a query, ``selectinload(User.posts)`` and the mapper are
unchanged. SQLAlchemy has no public hook for reading an attribute of an object
outside a session: for such an object its lazy loader returns an empty
collection or None, a silent wrong answer. Objects that a SQLAlchemy
``Session`` holds keep SQLAlchemy's behaviour (lazy loading in synchronous
code), with ``MissingGreenlet``/``DetachedInstanceError`` turned into
``RelationNotLoaded``. Attribute events on the models' own attributes keep the
rest in step: assigning ``post.author = user`` sets ``post.author_id`` at once
and marks the relation loaded; changing ``post.author_id`` drops a loaded
``post.author`` that no longer matches; reading a column that was not loaded
raises (``init_scalar``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import MissingGreenlet, StatementError
from sqlalchemy.orm import (
    ClassManager,
    ColumnProperty,
    Mapper,
    PassiveFlag,
    QueryableAttribute,
    RelationshipProperty,
    registry,
)
from sqlalchemy.orm.attributes import get_history, instance_state, set_committed_value
from sqlalchemy.orm.exc import DetachedInstanceError

from flash_db.compiler import Layout
from flash_db.exceptions import RelationNotLoaded
from flash_db.fields import info

__all__ = [
    "RELATED",
    "SNAPSHOT",
    "STATE_ATTR",
    "Loader",
    "RelationAttribute",
    "build",
    "changed_fields",
    "construct",
    "forget_related",
    "forget_stored",
    "gc_paused",
    "instrument",
    "is_related",
    "is_stored",
    "load_fields",
    "loader",
    "mark_related",
    "set_related",
    "state_on_demand",
    "store",
    "store_many",
    "stored_pk",
]

SNAPSHOT = "_flash_stored"
RELATED = "_flash_related"
_MISSING = object()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a block builds many objects.

    Building model objects (or dicts) from rows allocates several containers per
    row, and CPython's collector runs every 700 net allocations, walking the
    young objects each time and, as they pile up, older ones: measured on a
    10,000-row fetch with 50,000 objects alive, 13.3 µs a row with the collector
    against 4.4 µs without. Loading creates no garbage cycles, so pausing it
    loses nothing; use it around synchronous code that builds objects. A
    collector the program disabled stays so.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- rows to instances ----------------------------------------------------------------


#: The attribute under which SQLAlchemy keeps an instance's state (read with getattr).
STATE_ATTR = ClassManager.STATE_ATTR


def state_on_demand(obj: Any) -> Any:
    """Make and return the SQLAlchemy state of ``obj``, an object built from a row.

    Called by the model's ``__getattr__``, which Python calls only for a name the
    object lacks, when SQLAlchemy reads the state
    (``getattr(obj, ClassManager.STATE_ATTR)``) of an object that holds values.
    An object being constructed (its ``__dict__`` still empty) gets its state
    from SQLAlchemy's instrumented ``__init__`` instead, which asks first and
    then runs its ``init`` event.
    """
    mapper: Mapper[Any] = type(obj).__mapper__
    mapper.class_manager.setup_instance(obj)
    return instance_state(obj)


class Loader:
    """Builds instances of one model from rows holding its columns in one order."""

    __slots__ = ("keys", "model")

    def __init__(self, model: type[Any], keys: tuple[str, ...]) -> None:
        mapper: Mapper[Any] = model.__mapper__
        mapper.registry.configure()  # instances need configured attributes
        self.model = model
        self.keys = keys

    def one(self, row: Sequence[Any]) -> Any:
        """Return the instance of one row (the columns in ``keys`` order: a tuple or a Row)."""
        obj = object.__new__(self.model)
        loaded = obj.__dict__
        loaded.update(zip(self.keys, row, strict=True))
        loaded[SNAPSHOT] = (self.keys, row)
        return obj

    def many(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        """Return the instances of ``rows`` (SQLAlchemy Rows are used as they are)."""
        new = object.__new__
        model = self.model
        keys = self.keys
        result: list[Any] = []
        append = result.append
        for row in rows:
            obj = new(model)
            loaded = obj.__dict__
            loaded.update(zip(keys, row))  # noqa: B905 - the SELECT has exactly these columns
            loaded[SNAPSHOT] = (keys, row)
            append(obj)
        return result


_LOADERS: dict[type[Any], dict[tuple[str, ...], Loader]] = {}


def loader(model: type[Any], keys: tuple[str, ...]) -> Loader:
    """Return the :class:`Loader` of ``model`` for rows of ``keys`` (made once)."""
    by_keys = _LOADERS.get(model)
    if by_keys is None:
        by_keys = _LOADERS[model] = {}
    found = by_keys.get(keys)
    if found is None:
        found = by_keys[keys] = Loader(model, keys)
    return found


def build(layout: Layout, rows: Sequence[Any]) -> list[Any]:
    """Return the instances of a model SELECT's rows, with select_related and annotations."""
    base = loader(layout.model, layout.keys)
    width = len(layout.keys)
    if not layout.related and not layout.annotations:
        return base.many(rows)
    related = [(item, loader(item.model, item.keys)) for item in layout.related]
    names = layout.annotations
    first = -len(names) if names else None
    result = []
    for row in map(tuple, rows):
        obj = base.one(row[:width])
        owners: list[Any] = []
        for item, item_loader in related:
            owner = obj if item.parent < 0 else owners[item.parent]
            value = None
            if row[item.pk_index] is not None:
                value = item_loader.one(row[item.start : item.start + len(item.keys)])
            owners.append(value)
            if owner is not None:
                set_related(owner, item.relation, value)
        if names:
            obj.__dict__.update(zip(names, row[first:], strict=True))
        result.append(obj)
    return result


# Per class: the column attributes a constructor argument is stored into directly
# (those with no "set" listener when the class made its first object).
_PLAIN: dict[type[Any], frozenset[str]] = {}


def construct(obj: Any, values: dict[str, Any]) -> None:
    """Set the constructor's keyword arguments on the new ``obj`` (a model's ``__init__``).

    Column values are stored as they are; relations, and columns with a ``set``
    listener when the class made its first object (``@validates``, Flash DB's
    foreign-key listener), are assigned through SQLAlchemy's attributes.
    """
    cls = type(obj)
    plain = _PLAIN.get(cls)
    if plain is None:
        attributes = info(cls).attributes
        plain = frozenset(key for key, attr in attributes.items() if not attr.dispatch.set)
        _PLAIN[cls] = plain
    loaded = obj.__dict__
    later = None
    for key, value in values.items():
        if key in plain:
            loaded[key] = value
        elif later is None:
            later = [(key, value)]
        else:
            later.append((key, value))
    if later:
        for key, value in later:
            if not hasattr(cls, key):
                raise TypeError(f"{key!r} is an invalid keyword argument for {cls.__name__}")
            setattr(obj, key, value)


# -- what is stored, what changed ---------------------------------------------------


def is_stored(obj: Any) -> bool:
    """Return whether ``obj``'s row is stored (loaded, or written by Flash DB or a Session)."""
    return SNAPSHOT in obj.__dict__ or instance_state(obj).key is not None


def stored_pk(obj: Any) -> tuple[Any, ...]:
    """Return the primary key ``obj``'s row is stored under (before any unsaved change to it)."""
    model_info = info(type(obj))
    snapshot = obj.__dict__.get(SNAPSHOT)
    if snapshot is not None:
        keys, values = snapshot
        stored = dict(zip(keys, values, strict=True))
        return tuple(stored[key] for key in model_info.pk_keys)
    identity = instance_state(obj).identity
    if identity is None:
        raise ValueError(f"{type(obj).__name__} object is not stored, it has no primary key yet.")
    return tuple(identity)


def changed_fields(obj: Any) -> list[str]:
    """Return the column attributes of a stored ``obj`` whose value differs from the stored one."""
    model_info = info(type(obj))
    loaded = obj.__dict__
    snapshot = loaded.get(SNAPSHOT)
    if snapshot is None:
        # An object of a SQLAlchemy Session: its attribute history says what changed.
        return [
            key
            for key, _ in model_info.columns
            if key in loaded
            and get_history(obj, key, PassiveFlag.PASSIVE_NO_INITIALIZE).has_changes()
        ]
    keys, values = snapshot
    compare = model_info.compare
    changed = []
    for key, old in zip(keys, values, strict=True):
        new = loaded.get(key, _MISSING)
        if new is old or new is _MISSING:
            continue
        equal = compare.get(key)
        if equal is None:
            continue  # an expression attribute (column_property): never written
        if not equal(new, old):
            changed.append(key)
    if len(keys) < len(model_info.columns):
        # Columns that were not loaded count as changed once assigned.
        present = set(keys)
        changed.extend(key for key, _ in model_info.columns if key not in present and key in loaded)
    return changed


def store(obj: Any, keys: Sequence[str] | None = None) -> None:
    """Record ``obj``'s current values of ``keys`` (default: every column) as stored.

    Called after a write: the snapshot takes the written values, other columns
    keep what they had (so their unsaved changes stay changed).
    """
    loaded = obj.__dict__
    snapshot = loaded.get(SNAPSHOT)
    if snapshot is None:
        if instance_state(obj).key is not None and keys is not None:
            # An object of a SQLAlchemy Session: settle its attribute history instead.
            for key in keys:
                set_committed_value(obj, key, loaded.get(key))
            return
        names = tuple(key for key, _ in info(type(obj)).columns if key in loaded)
        loaded[SNAPSHOT] = (names, tuple(loaded[key] for key in names))
        return
    old_keys, old_values = snapshot
    values = dict(zip(old_keys, old_values, strict=True))
    for key in keys if keys is not None else [k for k, _ in info(type(obj)).columns]:
        if key in loaded:
            values[key] = loaded[key]
    names = tuple(values)
    loaded[SNAPSHOT] = (names, tuple(values.values()))


def store_many(objects: Sequence[Any], keys: Sequence[str]) -> None:
    """Record the current values of ``keys`` as stored on every one of ``objects`` (bulk_update).

    What :func:`store` does, with the snapshot positions of ``keys`` found once
    per column layout instead of once per object.
    """
    positions: dict[int, list[tuple[int, str]] | None] = {}
    for obj in objects:
        loaded = obj.__dict__
        snapshot = loaded.get(SNAPSHOT)
        if snapshot is None:
            store(obj, keys)
            continue
        names, values = snapshot
        if id(names) in positions:
            where = positions[id(names)]
        else:
            found = {name: index for index, name in enumerate(names)}
            where = [(found[key], key) for key in keys] if all(k in found for k in keys) else None
            positions[id(names)] = where
        if where is None:
            store(obj, keys)  # a key the snapshot lacks (a column loaded later)
            continue
        new = list(values)
        for index, key in where:
            new[index] = loaded[key]
        loaded[SNAPSHOT] = (names, tuple(new))


def forget_stored(obj: Any) -> None:
    """Mark ``obj`` as not stored (its row was deleted): a later ``save()`` inserts it."""
    obj.__dict__.pop(SNAPSHOT, None)


def load_fields(obj: Any, keys: Sequence[str], values: Sequence[Any]) -> None:
    """Put freshly read column values on a stored ``obj`` (``refresh_from_db``)."""
    loaded = obj.__dict__
    loaded.update(zip(keys, values, strict=True))
    snapshot = loaded.get(SNAPSHOT)
    merged = dict(zip(*snapshot, strict=True)) if snapshot is not None else {}
    merged.update(zip(keys, values, strict=True))
    loaded[SNAPSHOT] = (tuple(merged), tuple(merged.values()))


# -- relations --------------------------------------------------------------------


def mark_related(obj: Any, name: str) -> None:
    """Record that relation ``name`` of ``obj`` holds its value (loaded or assigned)."""
    loaded = obj.__dict__
    names = loaded.get(RELATED)
    if names is None:
        loaded[RELATED] = {name}
    else:
        names.add(name)


def forget_related(obj: Any, name: str) -> None:
    """Drop what relation ``name`` of ``obj`` held: reading it raises until loaded again."""
    loaded = obj.__dict__
    names = loaded.get(RELATED)
    if names is not None:
        names.discard(name)
    loaded.pop(name, None)


def set_related(obj: Any, name: str, value: Any) -> None:
    """Set loaded relation ``name`` of ``obj`` to ``value`` (an object, None or a list).

    As SQLAlchemy's own loading does: no change events, no backrefs; a
    collection becomes the relationship's collection type.
    """
    if isinstance(value, list):
        set_committed_value(obj, name, value)
    else:
        obj.__dict__[name] = value
    mark_related(obj, name)


def is_related(obj: Any, name: str) -> bool:
    """Return whether relation ``name`` of ``obj`` holds a loaded or assigned value."""
    names = obj.__dict__.get(RELATED)
    return names is not None and name in names


class RelationAttribute:
    """The class attribute of a relationship of a Flash DB model (see the module docstring)."""

    __slots__ = ("attribute", "foreign_keys", "key", "to_many")

    def __init__(self, attribute: QueryableAttribute[Any], prop: RelationshipProperty[Any]) -> None:
        self.attribute = attribute
        self.key = prop.key
        self.to_many = bool(prop.uselist)
        self.foreign_keys = info(prop.parent.class_).foreign_keys.get(prop.key, ())

    def __get__(self, instance: Any, owner: type[Any]) -> Any:
        if instance is None:
            return self.attribute
        loaded = instance.__dict__
        names = loaded.get(RELATED)
        key = self.key
        if names is not None and key in names and key in loaded:
            return loaded[key]
        state = instance_state(instance)  # made now for a loaded object (state_on_demand)
        if state.key is not None or state.session is not None:
            # An object a SQLAlchemy Session holds (or held): SQLAlchemy's rules.
            try:
                return self.attribute.__get__(instance, owner)
            except (MissingGreenlet, DetachedInstanceError) as error:
                raise RelationNotLoaded(owner, key, to_many=self.to_many) from error
            except StatementError as error:  # the lazy load's SELECT failed to run
                if not isinstance(error.orig, MissingGreenlet):
                    raise
                raise RelationNotLoaded(owner, key, to_many=self.to_many) from error
        if self.foreign_keys and all(loaded.get(fk) is None for fk in self.foreign_keys):
            return None  # no related row to load
        raise RelationNotLoaded(owner, key, to_many=self.to_many)

    def __set__(self, instance: Any, value: Any) -> None:
        self.attribute.__set__(instance, value)

    def __delete__(self, instance: Any) -> None:
        self.attribute.__delete__(instance)
        forget_related(instance, self.key)


# -- installing it on the models ---------------------------------------------------

# (class, attribute key) pairs already instrumented.
_DONE: dict[type[Any], set[str]] = {}


def instrument(models: registry) -> None:
    """Install Flash DB's relation attributes and attribute listeners on ``models``' mappers.

    Run after every configuration of the registry (``after_configured``), when
    every relationship, backrefs included, exists; mappers done before are skipped.
    """
    for mapper in list(models.mappers):
        cls = mapper.class_
        done = _DONE.setdefault(cls, set())
        for prop in mapper.iterate_properties:
            if prop.parent is not mapper or prop.key in done:
                continue
            done.add(prop.key)
            if isinstance(prop, RelationshipProperty):
                _instrument_relation(cls, prop)
            elif isinstance(prop, ColumnProperty):
                _instrument_column(cls, mapper, prop)


def _remote_keys(prop: RelationshipProperty[Any]) -> tuple[str, ...]:
    """Return the attribute keys, on the related model, of a many-to-one's referenced columns."""
    return tuple(
        prop.mapper.get_property_by_column(remote).key for _, remote in prop.local_remote_pairs
    )


def _instrument_relation(cls: type[Any], prop: RelationshipProperty[Any]) -> None:
    attribute = prop.class_attribute
    setattr(cls, prop.key, RelationAttribute(attribute, prop))
    key = prop.key
    if prop.uselist:

        def on_replace(target: Any, values: Any, initiator: Any, **kw: Any) -> None:
            mark_related(target, key)

        event.listen(attribute, "bulk_replace", on_replace, propagate=True)
        return
    foreign_keys = info(cls).foreign_keys.get(key, ())
    pairs = list(zip(foreign_keys, _remote_keys(prop), strict=True)) if foreign_keys else []

    def on_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
        # post.author = user sets post.author_id at once (None for None); the key of
        # an unsaved object is set, or refused, by save().
        loaded = target.__dict__
        for fk, remote in pairs:
            new = None if value is None else value.__dict__.get(remote)
            if (value is None or new is not None) and loaded.get(fk, _MISSING) is not new:
                setattr(target, fk, new)
        mark_related(target, key)

    event.listen(attribute, "set", on_set, propagate=True)


def _instrument_column(cls: type[Any], mapper: Mapper[Any], prop: ColumnProperty[Any]) -> None:
    attribute = prop.class_attribute
    key = prop.key

    def on_init_scalar(target: Any, value: Any, loaded: dict[str, Any]) -> None:
        if SNAPSHOT in loaded:
            # A stored object read without this column (only()/defer()).
            raise RelationNotLoaded(type(target), key, column=True)

    event.listen(attribute, "init_scalar", on_init_scalar, propagate=True)
    # The many-to-one relations this column is a foreign key of: (name, key on the related model).
    relations = [
        (name, _remote_keys(mapper.relationships[name])[keys.index(key)])
        for name, keys in info(cls).foreign_keys.items()
        if key in keys
    ]
    if not relations:
        return

    def on_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
        # Django: a changed foreign key drops the loaded object it no longer points to.
        loaded = target.__dict__
        names = loaded.get(RELATED)
        if not names:
            return
        for name, remote in relations:
            if name in names:
                related = loaded.get(name)
                if (None if related is None else related.__dict__.get(remote)) != value:
                    forget_related(target, name)

    event.listen(attribute, "set", on_set, propagate=True)
