"""``python -m example_app``: serve the blog with uvicorn on 127.0.0.1 ($PORT, default 8000)."""

from __future__ import annotations

import os

import uvicorn


def main() -> None:
    """Start uvicorn and print where the API docs are."""
    host = "127.0.0.1"
    port = int(os.environ.get("PORT", "8000"))
    print(f"Flash DB example blog -- API docs at http://{host}:{port}/docs", flush=True)
    uvicorn.run("example_app.app:app", host=host, port=port)


if __name__ == "__main__":
    main()
