"""Signals: ``Signal`` and the model signals pre_save, post_save, pre_delete and post_delete.

Receivers may be sync or async functions; ``send`` calls them in connection
order and awaits the async ones before it returns, so a receiver's exception
propagates to the write that sent the signal. Receivers are held strongly.

When they run:

- ``pre_save``/``post_save``: ``create()``, ``save()``, ``get_or_create()`` and
  ``update_or_create()`` when they write, with ``created`` (insert or update)
  and ``update_fields`` (``None`` for a full save, else a ``frozenset``). Not
  for validate-failed writes, bulk operations, ``QuerySet.update()`` or
  ``restore()``.
- ``pre_delete``/``post_delete``: instance ``delete()``/``hard_delete()`` and,
  once per row, ``QuerySet.delete()``/``hard_delete()`` when a receiver is
  connected for the model (soft deletes included). The queryset form then
  loads the rows, sends every ``pre_delete``, one statement, every
  ``post_delete``; with no receiver it sends the one statement and loads nothing.

A receiver connected with a sender runs for that exact class (not subclasses);
one connected without a sender runs for every model.

The write and its receivers share one transaction (as in Django inside
``atomic``): ``pre_save`` runs before the statement, ``post_save`` after it but
before the COMMIT, so an exception in either rolls the write back. Outside
``atomic`` Flash DB opens that transaction itself, only when receivers are
connected; inside ``atomic`` the exception rolls back the caller's block when
it propagates out of it. Side effects that must only happen once the data is
committed (emails, tasks) belong in ``on_commit(db, ...)`` inside a receiver.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["Signal", "post_delete", "post_save", "pre_delete", "pre_save"]

Receiver = Callable[..., Any]
RecT = TypeVar("RecT", bound=Receiver)


class Signal:
    """A list of receivers, each for one sender class or for every sender."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[tuple[Receiver, type[Any] | None]] = []

    def __repr__(self) -> str:
        return f"<Signal {self.name} receivers={len(self._receivers)}>"

    @overload
    def connect(self, receiver: type[Any], sender: None = None) -> Callable[[RecT], RecT]: ...

    @overload
    def connect(self, receiver: RecT, sender: type[Any] | None = None) -> RecT: ...

    @overload
    def connect(
        self, receiver: None = None, sender: type[Any] | None = None
    ) -> Callable[[RecT], RecT]: ...

    def connect(self, receiver: Any = None, sender: type[Any] | None = None) -> Any:
        """Connect ``receiver`` (for ``sender`` only, if given); or return a decorator.

        ``signal.connect(func)``, ``signal.connect(func, sender=User)``,
        ``@signal.connect(User)`` and ``@signal.connect()`` are all accepted.
        """
        if isinstance(receiver, type):
            if sender is not None:
                raise TypeError(f"{self.name}.connect() got two senders: {receiver!r}, {sender!r}.")
            receiver, sender = None, receiver
        if receiver is None:

            def decorator(func: RecT) -> RecT:
                self._add(func, sender)
                return func

            return decorator
        self._add(receiver, sender)
        return receiver

    def _add(self, receiver: Receiver, sender: type[Any] | None) -> None:
        if not callable(receiver):
            raise TypeError(f"{self.name}.connect() takes a callable receiver, got {receiver!r}.")
        if sender is not None and not isinstance(sender, type):
            raise TypeError(f"{self.name}.connect() takes a model class as sender, got {sender!r}.")
        if (receiver, sender) not in self._receivers:
            self._receivers.append((receiver, sender))

    def disconnect(self, receiver: Receiver, sender: type[Any] | None = None) -> bool:
        """Disconnect ``receiver`` as connected for ``sender``; return whether it was connected."""
        try:
            self._receivers.remove((receiver, sender))
        except ValueError:
            return False
        return True

    def receivers_for(self, sender: type[Any]) -> list[Receiver]:
        """Return the receivers that a ``send`` for ``sender`` would call, in order."""
        return [func for func, wanted in self._receivers if wanted is None or wanted is sender]

    def has_receivers(self, sender: type[Any]) -> bool:
        """Return whether any receiver is connected for ``sender`` (or for every sender)."""
        return any(wanted is None or wanted is sender for _, wanted in self._receivers)

    async def send(self, sender: type[Any], **kwargs: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver for ``sender`` with ``sender=`` and ``kwargs``, awaiting async ones.

        Returns ``[(receiver, result), ...]``; a receiver's exception propagates
        and the remaining receivers are not called.
        """
        results: list[tuple[Receiver, Any]] = []
        for receiver in self.receivers_for(sender):
            result = receiver(sender=sender, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            results.append((receiver, result))
        return results


pre_save = Signal("pre_save")
post_save = Signal("post_save")
pre_delete = Signal("pre_delete")
post_delete = Signal("post_delete")


def has_save_receivers(sender: type[Any]) -> bool:
    """Return whether ``pre_save`` or ``post_save`` has a receiver for ``sender``."""
    return pre_save.has_receivers(sender) or post_save.has_receivers(sender)


def has_delete_receivers(sender: type[Any]) -> bool:
    """Return whether ``pre_delete`` or ``post_delete`` has a receiver for ``sender``."""
    return pre_delete.has_receivers(sender) or post_delete.has_receivers(sender)
