"""``python -m runyard.server --host H --port P``: run the server in the foreground."""

from __future__ import annotations

import argparse
import sys

from runyard.errors import RunyardError
from runyard.server._serve import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m runyard.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    try:
        serve(args.host, args.port, log_level=args.log_level)
    except RunyardError as e:
        print(f"Error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"Hint: {e.hint}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
