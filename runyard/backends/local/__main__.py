"""``python -m runyard.backends.local agent [--dir DIR] [--idle-exit-s N]``: serve the local backend's agent.

``AgentClient`` starts it on demand, detached in its own session; run it in the
foreground to see why one fails to start.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runyard.backends.local", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    agent = sub.add_parser("agent", help="serve the local backend's agent")
    agent.add_argument("--dir", type=Path, default=None, help="agent directory (default: $RUNYARD_HOME/agent)")
    agent.add_argument("--idle-exit-s", type=float, default=600.0, help="exit after this long without jobs (0: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from runyard.backends.local._protocol import agent_dir
    from runyard.backends.local._server import Agent

    return Agent(args.dir or agent_dir(), idle_exit_s=args.idle_exit_s).serve()


if __name__ == "__main__":
    sys.exit(main())
