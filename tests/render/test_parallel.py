"""The render check's chunks of lead ids and the pipe that hands them out (render.parallel)."""

from __future__ import annotations

import json
import os
from itertools import pairwise

import pytest

from sponsorcast.render import parallel


def test_no_recipients_no_chunks() -> None:
    assert parallel.chunks_of(0, None, None, 2) == []


def test_chunks_of_about_500_recipients_cover_the_ids_once() -> None:
    # 20,000 ids 1..20,000: 40 chunks (20,000 / 500) of 500 ids
    chunks = parallel.chunks_of(20_000, 1, 20_000, 2)
    assert len(chunks) == 40
    assert chunks[0] == [1, 500] and chunks[1] == [501, 1000] and chunks[-1] == [19_501, 20_000]
    assert all(b[0] == a[1] + 1 for a, b in pairwise(chunks))


def test_a_small_audience_still_gets_eight_chunks_a_shard() -> None:
    # 400 recipients with ids 101..900 over 2 shards: 16 chunks, ceil(800 / 16) = 50 ids each
    chunks = parallel.chunks_of(400, 101, 900, 2)
    assert len(chunks) == 16
    assert chunks[0] == [101, 150] and chunks[-1] == [851, 900]
    # three ids cannot make 16 chunks: one id each
    assert parallel.chunks_of(3, 5, 7, 2) == [[5, 5], [6, 6], [7, 7]]


def test_a_huge_audience_stops_at_the_most_chunks_the_pipe_takes() -> None:
    # 10**6 ids over 4 shards: 2,000 chunks wanted, 1,024 at most, ceil(10**6 / 1024) = 977 ids
    chunks = parallel.chunks_of(1_000_000, 1, 1_000_000, 4)
    assert len(chunks) == 1024 == parallel.MAX_CHUNKS
    assert chunks[0] == [1, 977] and chunks[-1] == [1023 * 977 + 1, 1_000_000]


def test_more_claims_than_one_pipe_write_takes_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 1024 chunks"):
        parallel._Claims(parallel.MAX_CHUNKS + 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="claims are shared by forked processes")
def test_forked_processes_take_every_chunk_exactly_once() -> None:
    claims = parallel._Claims(parallel.MAX_CHUNKS)
    children: list[tuple[int, int]] = []
    for _ in range(3):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's lines run in the fork
            os.close(read_end)
            with os.fdopen(write_end, "w") as out:
                out.write(json.dumps(list(claims)))
            os._exit(0)
        os.close(write_end)
        children.append((pid, read_end))
    mine = list(claims)
    taken = [mine]
    for pid, read_end in children:
        with os.fdopen(read_end) as answer:
            taken.append(json.loads(answer.read()))
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    claims.close()
    everything = sorted(n for each in taken for n in each)
    assert everything == list(range(parallel.MAX_CHUNKS))  # none twice, none lost
    assert all(each == sorted(each) for each in taken)  # each process takes them in order
