"""How `invoke run --nodes N` watches its ranks (no Docker: the ranks' events are queued by hand):
every line is shown, the first non-zero exit is the job's, a failed rank stops the others at once,
and a rank stopped by SIGTERM lets the others finish the agreed step and print their stop lines."""
from __future__ import annotations

import queue

from kunlun_bundle.training import multinode


class Rank:
    def __init__(self, events: queue.Queue, rank: int, on_stop: list | None = None):
        self.events, self.rank, self.stopped, self.on_stop = events, rank, False, on_stop or []

    def stop(self, timeout: int = 10) -> None:
        self.stopped = True
        for event in self.on_stop:    # a stopped container's last lines, then its exit
            self.events.put(event)


def watch(events, ranks, capsys) -> tuple[int, str]:
    code = multinode._watch(multinode.Plan("kunlun-test-1a2b3c", len(ranks)), ranks, events)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_rank_stopped_by_sigterm_lets_the_others_finish_and_shows_their_stop_line(capsys):
    events = queue.Queue()
    ranks = [Rank(events, 0), Rank(events, 1)]
    for event in [("line", 1, "[dqn] step 3/40"), ("exit", 1, 143),
                  ("line", 0, "[dqn] stopped by SIGTERM after step 3"), ("exit", 0, 143)]:
        events.put(event)
    code, shown = watch(events, ranks, capsys)
    assert code == 143
    assert "[rank 0] [dqn] stopped by SIGTERM after step 3" in shown
    assert not ranks[0].stopped                  # it stopped by itself, within the grace


def test_a_failed_rank_stops_the_others_at_once_and_their_last_lines_are_still_shown(capsys):
    events = queue.Queue()
    ranks = [Rank(events, 0, on_stop=[("line", 0, "[dqn] stopped by SIGTERM after step 5"), ("exit", 0, 143)]),
             Rank(events, 1)]
    events.put(("line", 1, "Traceback: out of memory"))
    events.put(("exit", 1, 1))
    code, shown = watch(events, ranks, capsys)
    assert code == 1 and ranks[0].stopped
    assert "rank 1 (kunlun-test-1a2b3c-1) exited with code 1" in shown
    assert "[rank 0] [dqn] stopped by SIGTERM after step 5" in shown


def test_a_rank_that_does_not_stop_within_the_grace_is_stopped(capsys, monkeypatch):
    monkeypatch.setattr(multinode, "STOP_GRACE", 0.1)
    events = queue.Queue()
    ranks = [Rank(events, 0, on_stop=[("exit", 0, 137)]), Rank(events, 1)]
    events.put(("exit", 1, 143))
    code, _ = watch(events, ranks, capsys)
    assert code == 143 and ranks[0].stopped


def test_a_job_whose_ranks_all_succeed_exits_0(capsys):
    events = queue.Queue()
    for event in [("line", 0, "[dqn] step 1/1"), ("exit", 0, 0), ("exit", 1, 0)]:
        events.put(event)
    assert watch(events, [Rank(events, 0), Rank(events, 1)], capsys)[0] == 0
