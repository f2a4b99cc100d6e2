"""The TensorBoard process of ``runyard tensorboard``: ``python -m runyard.server._tbserve IDLE_S TENSORBOARD-ARGS...``.

TensorBoard itself (``tensorboard.program.TensorBoard`` with its default plugins), with two
changes: it uses TensorBoard's TensorFlow-free reader (``tensorboard.compat.notf``: starting
TensorFlow would take seconds and is not needed for local event files), and it exits once no
request reached it for ``IDLE_S`` seconds (0: never). A page left open keeps it alive: the
dashboard asks for new data every 30 s by default.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from typing import Any


def main(argv: list[str]) -> None:
    idle_s = float(argv[0])
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from absl import app as absl_app
    from tensorboard import default, program
    from tensorboard.plugins import base_plugin

    last = [time.monotonic()]

    class IdleServer(program.WerkzeugServer):  # type: ignore[misc]
        def __init__(self, wsgi_app: Any, flags: Any) -> None:
            def counted(environ: Any, start_response: Any) -> Any:
                last[0] = time.monotonic()
                return wsgi_app(environ, start_response)

            super().__init__(counted, flags)

    if idle_s > 0:
        def watch() -> None:
            while time.monotonic() - last[0] < idle_s:
                time.sleep(min(1.0, idle_s / 4))
            sys.stderr.write(f"TensorBoard stopped: no request for {idle_s:g}s.\n")
            sys.stderr.flush()
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    board = program.TensorBoard(plugins=default.get_plugins(), server_class=IdleServer)
    try:
        absl_app.run(board.main, argv=["tensorboard", *argv[1:]], flags_parser=board.configure)
    except base_plugin.FlagsError as e:
        sys.stderr.write(f"Error: {e}\n")
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
