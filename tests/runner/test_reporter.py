"""The reporter against a real server when an answer is lost: what the server stored is not stored again."""

from __future__ import annotations

import time

from runyard.client import Client
from runyard.errors import ServerUnreachable
from runyard.runner._reporter import Reporter
from runyard.testing import wait_for


class LosesFirstAnswers:
    """The real client, except that the first ``n`` log appends are stored and then "lost" on the way
    back (as when the server dies after its commit): the reporter sees ServerUnreachable."""

    def __init__(self, client: Client, n: int) -> None:
        self._client, self._left = client, n
        self.sent: list[tuple[str | None, int]] = []

    def append_logs(self, run_id: int, task: str, lines: list, *, batch_id: str | None = None) -> int:
        offset = self._client.append_logs(run_id, task, lines, batch_id=batch_id)
        self.sent.append((batch_id, len(lines)))
        if self._left > 0:
            self._left -= 1
            raise ServerUnreachable("the answer was lost", None)
        return offset

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._client, name)


def test_a_log_batch_whose_answer_was_lost_is_stored_once(client: Client) -> None:
    rid = client.create_run("reporter-tests", status="running")["id"]
    flaky = LosesFirstAnswers(client, n=2)
    reporter = Reporter(flaky, rid, "main", on_run_status=lambda status: None, heartbeat_s=60)
    reporter.start()
    for i in range(3):
        reporter.line("stdout", f"first-{i}", time.time())
    wait_for(lambda: flaky.sent, 30, "the first batch to go out")  # (and its answer to be lost) before more lines come
    for i in range(3):
        reporter.line("stdout", f"second-{i}", time.time())
    assert reporter.finish(30)

    texts = [ln["text"] for ln in client.read_logs(rid)["lines"]]
    assert texts == [f"first-{i}" for i in range(3)] + [f"second-{i}" for i in range(3)]
    ids = [batch_id for batch_id, _ in flaky.sent]
    assert ids[0] == ids[1] and None not in ids  # the retry kept its id (and its lines: not merged)
    assert flaky.sent[1][1] == 3
