"""Who is asking: a user's bearer token, and the admin token from configuration.

A user signs up with ``POST /users`` and gets a token back once; requests that
write send it as ``Authorization: Bearer <token>`` and act as that user. A
token is the user's id signed with HMAC-SHA256 under ``$BLOG_SECRET_KEY``
(without it, a random key per process: tokens then last until a restart).
This keeps the example short: a real app would also let tokens expire and be
revoked, and would check a password before handing one out.

Admin routes need ``X-Admin-Token`` equal to ``$BLOG_ADMIN_TOKEN``. There is no
default: without that setting no request is an admin's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from example_app.models import BlogUser
from flash_db_fastapi import Session
from flash_db_fastapi.errors import ErrorMessage

__all__ = [
    "ADMIN_RESPONSES",
    "USER_RESPONSES",
    "CurrentUser",
    "current_user",
    "require_admin",
    "token_for",
]

_SECRET = (os.environ.get("BLOG_SECRET_KEY") or secrets.token_hex(32)).encode()

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="UserToken",
    description="The token POST /users returned: `Authorization: Bearer <token>`.",
)
admin_header = APIKeyHeader(
    name="X-Admin-Token",
    auto_error=False,
    scheme_name="AdminToken",
    description="The admin token ($BLOG_ADMIN_TOKEN; admin routes are closed without it).",
)

USER_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "No valid user token was sent."},
    403: {"model": ErrorMessage, "description": "The row belongs to another user."},
}
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "No X-Admin-Token header was sent."},
    403: {"model": ErrorMessage, "description": "The X-Admin-Token is not the admin's."},
}


def _signature(user_id: int) -> str:
    return hmac.new(_SECRET, str(user_id).encode(), hashlib.sha256).hexdigest()


def token_for(user_id: int) -> str:
    """Return the bearer token of the user with this id."""
    return f"{user_id}.{_signature(user_id)}"


def _user_id(token: str) -> int | None:
    """Return the user id a token was signed for, or None for a forged or malformed one."""
    user_id, _, signature = token.partition(".")
    if not user_id.isascii() or not user_id.isdigit() or len(user_id) > 10:
        return None
    if not hmac.compare_digest(signature.encode(), _signature(int(user_id)).encode()):
        return None
    return int(user_id)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def current_user(
    db: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> BlogUser:
    """Return the user whose token the request sent; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("Send the user token: Authorization: Bearer <token> (POST /users).")
    user_id = _user_id(credentials.credentials)
    user = None if user_id is None else await BlogUser.objects.filter(pk=user_id).first(db)
    if user is None:
        raise _unauthorized("The user token is not valid.")
    return user


CurrentUser = Annotated[BlogUser, Depends(current_user)]
"""The signed-in user (a route parameter): 401 without a valid token."""


def require_admin(token: Annotated[str | None, Security(admin_header)]) -> None:
    """Allow the request only with the admin token from ``$BLOG_ADMIN_TOKEN``: 401, else 403."""
    if token is None:
        raise HTTPException(401, "This route needs the X-Admin-Token header.")
    expected = os.environ.get("BLOG_ADMIN_TOKEN")
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, "The X-Admin-Token is not valid.")
