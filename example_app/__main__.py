"""``python -m example_app``: serve the blog with uvicorn on 127.0.0.1 ($PORT, default 8000)."""

from __future__ import annotations

import os

import uvicorn


def main() -> None:
    """Start uvicorn and print where the API docs are."""
    host = "127.0.0.1"
    port = int(os.environ.get("PORT", "8000"))
    print(f"Flash DB example blog -- API docs at http://{host}:{port}/docs", flush=True)
    if os.environ.get("EXAMPLE_ADMIN_USER") and os.environ.get("EXAMPLE_ADMIN_PASSWORD"):
        print(f"Admin at http://{host}:{port}/admin", flush=True)
    else:
        print(
            "The admin (/admin) is off: to turn it on, run "
            "EXAMPLE_ADMIN_USER=admin EXAMPLE_ADMIN_PASSWORD='a long password' make run",
            flush=True,
        )
    uvicorn.run("example_app.app:app", host=host, port=port)


if __name__ == "__main__":
    main()
