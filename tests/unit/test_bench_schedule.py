"""The open-loop schedule: intended times fixed in advance, ordering waits kept per sender."""

from __future__ import annotations

import pytest

from bench.lags import Backlog, process_of_group, slowest
from bench.profiling import busy_threads, hotspots, own_code, read_collapsed
from bench.schedule import Item, conversations, due, split, steady

pytestmark = pytest.mark.unit


def test_a_steady_schedule_is_evenly_spaced_from_zero() -> None:
    items = steady(4, 2.5)
    assert [item.offset for item in items] == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    assert [item.body for item in items] == list(range(10))
    assert all(item.after is None and item.measured for item in items)
    assert len(steady(2000, 20)) == 40_000


def test_a_schedule_needs_a_positive_rate_and_duration() -> None:
    with pytest.raises(ValueError, match="positive"):
        steady(0, 10)
    with pytest.raises(ValueError, match="positive"):
        steady(10, -1)


def test_what_is_due_depends_only_on_the_clock_never_on_answers() -> None:
    offsets = [item.offset for item in steady(10, 1)]  # 0.0, 0.1, ... 0.9
    assert due(offsets, 0.0, 0) == 1
    assert due(offsets, 0.35, 1) == 4
    # A sender that stalled for a second finds everything due at once: it fires the lot
    # (late, and the latency of each still counts from its own intended time).
    assert due(offsets, 5.0, 4) == 10
    assert due(offsets, 0.05, 3) == 3  # nothing new before its time


def test_a_new_conversation_answers_after_its_first_message_is_accepted() -> None:
    items = conversations(2, 2, think=1.0)  # conversations at 0, 0.5, 1.0, 1.5
    assert len(items) == 8
    assert [i.offset for i in items] == sorted(i.offset for i in items)
    firsts = {i.body // 2: n for n, i in enumerate(items) if i.body % 2 == 0}
    for n, item in enumerate(items):
        if item.body % 2 == 1:
            first = items[firsts[item.body // 2]]
            assert item.measured
            assert item.after == firsts[item.body // 2]
            assert item.offset == pytest.approx(first.offset + 1.0)
            assert firsts[item.body // 2] < n
        else:
            assert not item.measured
            assert item.after is None


def test_a_zero_think_time_still_puts_the_first_message_first() -> None:
    items = conversations(1, 2, think=0)
    assert [(i.offset, i.body) for i in items] == [(0, 0), (0, 1), (1, 2), (1, 3)]
    assert items[1].after == 0
    assert items[3].after == 2
    with pytest.raises(ValueError, match="think"):
        conversations(1, 1, think=-1)


def test_senders_share_the_schedule_and_keep_each_wait_with_its_own_sender() -> None:
    items = conversations(10, 1, think=0.3)
    shares = split(items, 3)
    assert sorted(n for share in shares for n in share) == list(range(len(items)))
    owner = {n: s for s, share in enumerate(shares) for n in share}
    for n, item in enumerate(items):
        if item.after is not None:
            assert owner[item.after] == owner[n]
    assert all(share == sorted(share) for share in shares)
    plain = split(steady(10, 1), 3)
    assert [len(share) for share in plain] == [4, 3, 3]
    with pytest.raises(ValueError, match="sender"):
        split([Item(0, 0)], 0)


def test_the_stage_behind_the_biggest_backlog_is_the_one_to_profile() -> None:
    assert process_of_group("switchboard.assignment-router") == "assignment"
    assert process_of_group("switchboard.flows.directory-view") == "flows"
    assert process_of_group("switchboard.projector") == "projector"
    backlogs = [
        Backlog("switchboard.inbound", "inbound", 409),
        Backlog("switchboard.projector", "projector", 10),
        Backlog("relay:inbound", "relay", 0),
    ]
    assert slowest(backlogs) == backlogs[0]
    assert slowest([Backlog("switchboard.flows", "flows", 0)]) is None


def test_collapsed_stacks_read_into_self_and_total_shares() -> None:
    stacks = read_collapsed(
        "main (a.py:1);loop (a.py:5);execute (db.py:9) 6\n"
        "main (a.py:1);loop (a.py:5);decode (codec.py:3) 3\n"
        "main (a.py:1) 1\n"
        "garbage line\n"
    )
    assert sum(stacks.values()) == 10
    by_self, by_total = hotspots(stacks)
    assert by_self[0].function == "execute (db.py)"
    assert by_self[0].self_share == pytest.approx(0.6)
    assert by_total[0].function == "main (a.py)"
    assert by_total[0].total_share == pytest.approx(1.0)


def test_a_function_counts_once_whichever_line_ran_and_own_code_is_picked_out() -> None:
    stacks = read_collapsed(
        "run (asyncio/base.py:1);handle (services/inbound/handlers.py:40);"
        "execute (psycopg/cursor.py:9) 6\n"
        "run (asyncio/base.py:1);handle (services/inbound/handlers.py:52);"
        "decide (services/inbound/decide.py:7) 4\n"
    )
    mine = own_code(stacks)
    assert [h.function for h in mine][:1] == ["handle (services/inbound/handlers.py)"]
    assert mine[0].total_share == pytest.approx(1.0)
    decide = next(h for h in mine if h.function.startswith("decide"))
    assert decide.self_share == pytest.approx(0.4)


def test_idle_background_threads_are_left_out_of_the_wall_clock_profile() -> None:
    stacks = read_collapsed(
        "Thread.run (threading.py:1);ConnectionPool.worker (psycopg_pool/pool.py:2);"
        "Queue.get (queue.py:3);Condition.wait (threading.py:4) 50\n"
        "Thread.run (threading.py:1);WorkerThread.run (anyio/_asyncio.py:5);"
        "Queue.get (queue.py:3);Condition.wait (threading.py:4) 30\n"
        "Thread.run (threading.py:1);WorkerThread.run (anyio/_asyncio.py:6);"
        "append (services/store.py:7);Connection.wait (psycopg/connection.py:8) 15\n"
        "run_forever (asyncio/base_events.py:9);EpollSelector.select (selectors.py:10) 5\n"
    )
    busy = busy_threads(stacks)
    assert sum(busy.values()) == 20
    assert {stack[-1] for stack in busy} == {
        "Connection.wait (psycopg/connection.py)",
        "EpollSelector.select (selectors.py)",
    }
