"""The SQLite outbox: seq allocation, ack, replay order, age bound, persistence across restarts."""

import json
import multiprocessing
import os
import signal

import pytest

from device.spool import Spool, SpoolError


def _payload(seq):
    return json.dumps({"seq": seq})


def test_seq_increases_by_one_and_payload_sees_it(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        seqs = [spool.append("t", _payload) for _ in range(3)]
        assert seqs == [1, 2, 3]
        assert [json.loads(m.payload)["seq"] for m in spool.pending()] == [1, 2, 3]
        assert spool.depth == 3


def test_ack_removes_only_that_message_and_replay_is_in_seq_order(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        for _ in range(5):
            spool.append("t", _payload)
        spool.ack(2)
        spool.ack(4)
        assert [m.seq for m in spool.pending()] == [1, 3, 5]
        assert [m.seq for m in spool.pending(after=1, limit=1)] == [3]


def test_seq_and_messages_survive_reopen(tmp_path):
    path = tmp_path / "state" / "s.db"
    with Spool(path) as spool:
        spool.append("t", _payload)
        spool.append("t", _payload)
        spool.ack(1)
        spool.ack(2)  # empty now, but the counter must not restart
    with Spool(path) as spool:
        assert spool.depth == 0
        assert spool.append("t", _payload) == 3


def _append_then_die(path):
    spool = Spool(path)
    spool.append("t", _payload)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no clean shutdown


def test_committed_row_survives_sigkill(tmp_path):
    path = tmp_path / "s.db"
    proc = multiprocessing.get_context("fork").Process(target=_append_then_die, args=(path,))
    proc.start()
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    with Spool(path) as spool:
        assert [m.seq for m in spool.pending()] == [1]
        assert spool.append("t", _payload) == 2


def test_prune_drops_old_messages_and_counts_them_persistently(tmp_path):
    now = [1000.0]
    path = tmp_path / "s.db"
    with Spool(path, max_age_s=60, clock=lambda: now[0]) as spool:
        spool.append("t", _payload)
        now[0] += 30
        spool.append("t", _payload)
        now[0] += 45  # first is 75 s old, second 45 s
        assert spool.prune() == 1
        assert [m.seq for m in spool.pending()] == [2]
        assert spool.dropped == 1
    with Spool(path, max_age_s=60) as spool:
        assert spool.dropped == 1


def test_failed_payload_builder_allocates_nothing(tmp_path):
    def boom(seq):
        raise RuntimeError("no")

    with Spool(tmp_path / "s.db") as spool:
        with pytest.raises(RuntimeError):
            spool.append("t", boom)
        assert spool.append("t", _payload) == 1


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SpoolError, match="cannot open the spool"):
        Spool(blocker / "s.db")
    with pytest.raises(OSError):  # also the familiar built-in
        Spool(blocker / "s.db")
