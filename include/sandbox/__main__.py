"""``python -m include.sandbox [--host 127.0.0.1] [--port 8765]``: serve every vendor sandbox."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from include.sandbox.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    print(f"vendor sandbox on http://{args.host}:{args.port} (control API under /_sandbox)", flush=True)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_keep_alive=30,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
