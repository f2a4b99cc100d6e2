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


def test_lines_queued_faster_than_the_reporter_sends_go_out_in_batches_the_server_takes(client: Client) -> None:
    """Lines that pile up before the reporter thread runs (a chatty task on a busy machine) are sealed
    into batches of at most 5,000: one request of more than 10,000 lines is refused, and would lose them all."""
    rid = client.create_run("reporter-tests", status="running")["id"]
    spy = LosesFirstAnswers(client, n=0)
    reporter = Reporter(spy, rid, "main", on_run_status=lambda status: None, heartbeat_s=60)
    for i in range(25_000):  # before start(): nothing is sent yet
        reporter.line("stdout", f"l{i}", time.time())
    reporter.task_status(role="main", rank=0, status="running")  # seals the pending lines
    reporter.start()
    assert reporter.finish(60)

    assert max(n for _, n in spy.sent) <= 5000
    assert sum(n for _, n in spy.sent) == 25_000
    offset, texts = 0, []
    while True:
        page = client.read_logs(rid, offset)
        if not page["lines"]:
            break
        texts += [ln["text"] for ln in page["lines"]]
        offset = page["next_offset"]
    assert texts == [f"l{i}" for i in range(25_000)]


def test_output_metric_points_go_out_after_their_lines_and_are_bounded_while_queued(client: Client) -> None:
    rid = client.create_run("reporter-tests", status="running")["id"]
    reporter = Reporter(client, rid, "main", on_run_status=lambda status: None, heartbeat_s=60, max_buffered_lines=10)
    for step in range(14):  # before start(): all queued; beyond 10 points they are dropped and counted
        reporter.line("stdout", f"loss={step}", time.time())
        reporter.metrics({"loss": float(step)}, step, time.time())
    reporter.start()
    assert reporter.finish(30)
    history = client.metric_history(rid, "loss")
    assert history["steps"] == list(range(10)) and history["values"] == [float(s) for s in range(10)]
    texts = [ln["text"] for ln in client.read_logs(rid)["lines"]]
    assert ("[runyard] 4 metric points read from the output were dropped while the server was unreachable "
            "(more than 10 queued)") in texts
