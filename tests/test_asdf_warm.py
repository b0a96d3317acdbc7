"""Warm servers (plait.asdf.warm with plait/asdf/serve.lisp) on plain SBCL: workers forked on
request, their directory, arguments, output and exit status; cancelling; servers that cannot
start; the executor's strategy that forks them."""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from pathlib import Path

import pytest

from plait.asdf.warm import Unavailable, Warm, WarmPool, WarmStrategy, _Server
from plait.executor import LocalExecutor
from plait.request import Request
from tests.support import DATA, Contents

pytestmark = pytest.mark.lisp

SERVER = ("sbcl", "--script", str(DATA / "warm" / "server.lisp"))


def forking(executor: LocalExecutor, plans: dict[str, Warm]) -> tuple[Contents, list[bytes]]:
    """Have `executor` fork the commands `plans` names; a content store that keeps what it is
    given, and what it was given in order."""
    strategy = WarmStrategy(lambda: executor.directory)
    strategy.plans.update(plans)
    assert executor.use(strategy)
    content = Contents()
    return content, content.stored


def warm(entry: str, *args: str) -> Warm:
    return Warm(server=SERVER, entry=f"plait-test::{entry}", args=args)


def run_once(tmp_path: Path, entry: str, *args: str) -> None:
    """Run the test entry `entry` once, on a pool of its own, and check that it succeeded."""
    pool = WarmPool()
    try:
        assert pool.run(warm(entry, *args), {}, tmp_path, tmp_path / "log") == 0
    finally:
        pool.close()


def servers_alive(pool: WarmPool) -> list[str]:
    """The processes still running a server of `pool` (their command lines name its fifos)."""
    out = subprocess.run(
        ["pgrep", "-f", str(pool.directory)], capture_output=True, text=True, check=False
    )
    return out.stdout.split()


def all_gone(pool: WarmPool) -> bool:
    """Whether every process of `pool` has ended, within seconds: a worker forked ahead of a
    request that never came ends once it reads that its server has."""
    deadline = time.monotonic() + 10
    while servers_alive(pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    return servers_alive(pool) == []


def start_hanging(pool: WarmPool, tmp_path: Path) -> tuple[threading.Thread, list[int | None]]:
    """A worker that sleeps 600 s, run from a thread: returns once it runs, with the list its
    status goes to."""
    statuses: list[int | None] = []
    thread = threading.Thread(
        target=lambda: statuses.append(pool.run(warm("hang"), {}, tmp_path, tmp_path / "log"))
    )
    thread.start()
    deadline = time.monotonic() + 30
    # The server and the worker (forked ahead of the request, the first the server serves).
    while len(servers_alive(pool)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    return thread, statuses


def test_a_worker_runs_in_its_directory_with_its_arguments(tmp_path: Path) -> None:
    pool = WarmPool()
    try:
        status = pool.run(warm("report", "a b", 'q"uo\\te'), {}, tmp_path, tmp_path / "log")
        assert status == 0
        lines = (tmp_path / "report.txt").read_text().splitlines()
        assert lines == [f"{tmp_path}/", "a b", 'q"uo\\te']
        assert (tmp_path / "log").read_text() == "reported 2\n"
        # A second request forks from the same server: nothing is started again.
        assert servers_alive(pool)
        other = tmp_path / "other"
        other.mkdir()
        assert pool.run(warm("report"), {}, other, other / "log") == 0
        assert (other / "report.txt").read_text().splitlines() == [f"{other}/"]
    finally:
        pool.close()
    assert all_gone(pool)


def test_the_worker_for_a_request_is_forked_before_the_request(tmp_path: Path) -> None:
    # A server forks the worker for its next request while it waits for one, once ready and
    # again from its second request on: the request's worker is the process that was already
    # there, a child of the server.
    pool = WarmPool()
    try:
        assert pool.run(warm("report"), {}, tmp_path, tmp_path / "log") == 0
        assert pool.run(warm("report"), {}, tmp_path, tmp_path / "log") == 0
        deadline = time.monotonic() + 30
        while len(servers_alive(pool)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = servers_alive(pool)
        parents = {pid: parent_of(pid) for pid in alive}
        (waiting,) = [pid for pid in alive if parents[pid] in alive]
        assert pool.run(warm("pid"), {}, tmp_path, tmp_path / "log") == 0
        assert (tmp_path / "pid.txt").read_text() == f"{waiting}\n"
    finally:
        pool.close()
    assert all_gone(pool)  # a worker that got no request goes with its server


def test_a_worker_says_how_it_ended_before_it_exits(tmp_path: Path) -> None:
    # The server's protocol, spoken by hand: a worker given its request says "exited ID CODE"
    # on the server's replies itself, with no :status asked (its exit, which unmaps its image,
    # comes after); :status still reaps it, and says the same.
    requests, replies = tmp_path / "in", tmp_path / "out"
    os.mkfifo(requests)
    os.mkfifo(replies)
    to_server = os.open(requests, os.O_RDWR)
    from_server = os.open(replies, os.O_RDWR)
    server = subprocess.Popen([*SERVER, str(requests), str(replies)], cwd=tmp_path)
    lines: list[str] = []

    def until(wanted: str) -> None:
        deadline = time.monotonic() + 60
        while wanted not in lines:
            assert time.monotonic() < deadline, f"no '{wanted}' in {lines}"
            if select.select([from_server], [], [], 0.5)[0]:
                lines.extend(os.read(from_server, 4096).decode().splitlines())

    try:
        until("ready")
        work = tmp_path / "work"
        work.mkdir()
        run = f'(:run 7 "{work}" "{work / "log"}" "plait-test::report" ())\n'
        os.write(to_server, run.encode())
        until("exited 7 0")
        assert (work / "report.txt").is_file()
        started = [line for line in lines if line.startswith("started 7 ")]
        assert len(started) == 1
        lines.clear()
        os.write(to_server, b"(:status 7)\n")
        until("exited 7 0")
    finally:
        os.close(to_server)  # EOF: the server stops
        server.wait(30)
        os.close(from_server)


def test_a_request_whose_waiting_worker_died_gets_a_worker_forked_for_it(tmp_path: Path) -> None:
    pool = WarmPool()
    try:
        for _ in range(2):  # the worker forked ahead of the third request is there after these
            assert pool.run(warm("report"), {}, tmp_path, tmp_path / "log") == 0
        deadline = time.monotonic() + 30
        while len(servers_alive(pool)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = servers_alive(pool)
        (waiting,) = [pid for pid in alive if parent_of(pid) in alive]
        subprocess.run(["kill", "-9", waiting], check=True)
        while time.monotonic() < deadline and not dead_or_zombie(waiting):
            time.sleep(0.01)  # until its end of the pipe its request goes through is closed
        assert pool.run(warm("pid"), {}, tmp_path, tmp_path / "log") == 0
        forked = (tmp_path / "pid.txt").read_text().strip()
        assert forked != waiting
    finally:
        pool.close()
    assert all_gone(pool)


def test_a_worker_may_say_it_ended_before_its_server_says_it_started_it(tmp_path: Path) -> None:
    # Both write to the server's replies: the worker's "exited" can come first. The request
    # then ends with the worker's status, not as one the server never started.
    server = _Server(tmp_path / "s", ())
    try:
        waiter = server.request("(:run 5)", 5)
        replies = os.open(server.replies_path, os.O_WRONLY)
        try:
            os.write(replies, b"exited 5 3\nstarted 5 12345\n")
        finally:
            os.close(replies)
        assert waiter.done.wait(10)
        assert waiter.started.is_set()
        assert (waiter.status, waiter.pid) == (3, None)
    finally:
        server.stop()


def dead_or_zombie(pid: str) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


def parent_of(pid: str) -> str:
    out = subprocess.run(["ps", "-o", "ppid=", "-p", pid], capture_output=True, text=True)
    return out.stdout.strip()


def test_a_worker_is_the_only_thread_of_its_image(tmp_path: Path) -> None:
    # SBCL runs a finalizer thread; fork copies only the calling thread, so the server stops
    # it and forgets it before forking, or the worker's GC waits for a thread that is not there.
    run_once(tmp_path, "threads")
    assert (tmp_path / "threads.txt").read_text() == "1\n"


def test_a_server_forking_a_second_worker_leaves_it_no_young_heap_to_copy(tmp_path: Path) -> None:
    # What the server loaded sits in a young generation after its start; each worker collecting
    # that generation would copy it again. Once a second worker is asked for, the server moves
    # it where workers' collections leave it (a chain's servers, forking one, never pay that).
    pool = WarmPool()
    try:
        young = []
        for _ in range(3):
            assert pool.run(warm("young"), {}, tmp_path, tmp_path / "log") == 0
            young.append(int((tmp_path / "young.txt").read_text()))
        assert young[0] > 1_000_000
        assert young[1:] == [0, 0]
    finally:
        pool.close()


def test_a_compile_collects_its_nursery_more_often_and_its_survivors_less_than_sbcl_would(
    tmp_path: Path,
) -> None:
    # A worker lives for one compile: a smaller nursery than SBCL's default means fewer pages
    # faulted in for the first time; much of what survives it lives on for a while, so
    # collecting generation 1 as often as SBCL would only copies it again.
    run_once(tmp_path, "nursery")
    settings = list(map(int, (tmp_path / "nursery.txt").read_text().split()))
    nursery, survivors, kept_pages, nursery_after, survivors_after, kept_pages_after = settings
    assert nursery_after == 24 * 1024 * 1024 < nursery
    assert survivors_after == 200 * 1024 * 1024 > survivors
    # And the pages its collections free stay mapped, for it to allocate in again: SBCL gives
    # them back after collecting generation 2 or older; a worker, only after its oldest.
    assert kept_pages_after > kept_pages


def test_a_compile_whose_heap_fills_up_collects_its_survivors_as_sbcl_would(
    tmp_path: Path,
) -> None:
    # Keeping survivors uncollected is for a heap with room to spare: once a collection leaves
    # less than twice the 200 MB, generation 1 is collected at SBCL's own threshold again.
    run_once(tmp_path, "crowded")
    kept, crowded, arrays = map(int, (tmp_path / "crowded.txt").read_text().split())
    assert kept == 200 * 1024 * 1024
    assert crowded < 20 * 1024 * 1024
    assert arrays > 0


def test_a_server_counts_the_defined_functions_once_for_its_workers(tmp_path: Path) -> None:
    # The compile driver counts what is defined before a compile; a worker reuses the count the
    # server took when ready, which has what the server had loaded by then (the test entries).
    run_once(tmp_path, "defined-when-ready", "plait-test::report", "plait-test::no-such-function")
    lines = (tmp_path / "defined.txt").read_text().splitlines()
    assert lines == ["plait-test::report T", "plait-test::no-such-function NIL"]


def test_what_a_compile_defined_is_each_new_function_once(tmp_path: Path) -> None:
    # One pass over the symbols finds a new function, a new setf function, and a function whose
    # symbol two packages hold (which the pass meets twice), each named once.
    run_once(tmp_path, "defined-since")
    assert (tmp_path / "defined.txt").read_text().splitlines() == [
        "(COMMON-LISP:SETF PLAIT-TEST::FRESH-FUNCTION)",
        "PLAIT-TEST-EXPORTER:SHARED",
        "PLAIT-TEST::FRESH-FUNCTION",
    ]


def test_a_worker_s_exit_status_is_its_command_s(tmp_path: Path) -> None:
    pool = WarmPool()
    try:
        assert pool.run(warm("fail", "3"), {}, tmp_path, tmp_path / "log") == 3
        assert pool.run(warm("no-such-function"), {}, tmp_path, tmp_path / "log") == 1
        assert "NO-SUCH-FUNCTION" in (tmp_path / "log").read_text()
    finally:
        pool.close()


def test_cancelling_kills_a_running_worker(tmp_path: Path) -> None:
    pool = WarmPool()
    try:
        thread, statuses = start_hanging(pool, tmp_path)
        started = time.monotonic()
        pool.cancel()
        thread.join(30)
        assert not thread.is_alive()
        assert time.monotonic() - started < 5
        assert statuses and statuses[0] is not None and statuses[0] < 0
        with pytest.raises(Unavailable):
            pool.run(warm("report"), {}, tmp_path, tmp_path / "log")
    finally:
        pool.close()


def test_a_server_that_cannot_start_leaves_the_command_to_run_as_it_is(tmp_path: Path) -> None:
    pool = WarmPool()
    try:
        with pytest.raises(Unavailable):
            pool.run(Warm(server=("false",), entry="x", args=()), {}, tmp_path, tmp_path / "log")
        # Not started again for each command: it would fail again.
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(Unavailable):
                pool.run(Warm(server=("false",), entry="x", args=()), {}, tmp_path, tmp_path / "l")
        assert time.monotonic() - started < 0.5
        with pytest.raises(Unavailable):
            missing = Warm(server=(str(tmp_path / "no-such-sbcl"),), entry="x", args=())
            pool.run(missing, {}, tmp_path, tmp_path / "log")
    finally:
        pool.close()
    # The executor then runs the argv itself.
    request = Request(
        name="w",
        argv=("sh", "-c", "echo cold > out.txt"),
        env={},
        inputs={},
        outputs=("out.txt",),
    )
    with LocalExecutor() as executor:
        content, stored = forking(executor, {"w": Warm(server=("false",), entry="x", args=())})
        result = executor.execute(request, content, tmp_path / "w.log")
    assert result.ok
    assert stored == [b"cold\n"]


def test_a_worker_whose_server_dies_is_stopped_and_its_status_unknown(tmp_path: Path) -> None:
    pool = WarmPool()
    try:
        thread, statuses = start_hanging(pool, tmp_path)
        alive = servers_alive(pool)
        assert len(alive) == 2  # the server, and the worker (a copy of it)
        parents = {pid: parent_of(pid) for pid in alive}
        (server,) = [pid for pid in alive if parents[pid] not in alive]
        subprocess.run(["kill", "-9", server], check=True)
        thread.join(10)
        assert not thread.is_alive()
        assert statuses == [None]
        assert all_gone(pool)  # the workers went with it
    finally:
        pool.close()


def test_what_only_loads_read_is_linked_only_for_the_loads_a_worker_performs(
    tmp_path: Path,
) -> None:
    # The first command loads a.lisp's fasl itself and makes a server that has loaded it; the
    # second forks from that server, so its sandbox needs, and gets, no link to the fasl.
    fasl = "out" + str(DATA / "warm" / "a.fasl")
    source = tmp_path / "a.fasl"
    compile_a = f'(compile-file "{DATA / "warm" / "a.lisp"}" :output-file "{source}")'
    subprocess.run(
        ["sbcl", "--non-interactive", "--no-userinit", "--eval", compile_a],
        check=True,
        capture_output=True,
    )
    load = '("ASDF/LISP-ACTION::LOAD-OP" "warm-demo" "a")'

    def request(name: str) -> Request:
        return Request(
            name=name,
            argv=("false",),
            env={},
            inputs={fasl: content.add(source)},
            outputs=("staged.txt",),
            links=frozenset({fasl}),
        )

    plan = Warm(
        server=SERVER,
        entry="plait-test::staged",
        args=(fasl,),
        loads=(load,),
        shared=1,
        reads=((fasl,),),
    )

    with LocalExecutor() as executor:
        content, stored = forking(executor, {"first": plan, "second": plan})
        # The server the first makes may not be ready when its status is known: the second
        # waits for it.
        first = executor.execute(request("first"), content, tmp_path / "first.log")
        second = executor.execute(request("second"), content, tmp_path / "second.log")
    assert first.ok and second.ok, (tmp_path / "second.log").read_text()
    assert stored == [b"T T\n", b"NIL T\n"]


def test_an_adopted_server_that_stops_leaves_the_command_to_run_once_its_core_is_saved(
    tmp_path: Path,
) -> None:
    # The dump forks the root server before it has saved the core the argv names: if that
    # server stops, the argv may run only once the core is there, which it asks for.
    pool = WarmPool()
    asked = threading.Event()
    saved = threading.Event()

    def save_and_wait() -> None:
        asked.set()
        saved.wait()

    try:
        hosted = pool.host({})
        pool.adopt(hosted, SERVER, {}, save_and_wait)
        hosted.server.stop()  # as if it had died before it was ready
        threading.Timer(0.5, saved.set).start()
        started = time.monotonic()
        with pytest.raises(Unavailable):
            pool.run(warm("report"), {}, tmp_path, tmp_path / "log")
        assert asked.is_set() and saved.is_set()
        assert time.monotonic() - started >= 0.4
    finally:
        pool.close()


@pytest.mark.parametrize("namespaces", [True, False])
def test_a_forked_worker_sees_only_its_inputs_in_namespaces(
    tmp_path: Path, namespaces: bool
) -> None:
    """In the namespace sandbox, a worker forked from a warm server (which sees everything)
    joins namespaces that show it its sandbox and declared inputs, by any path."""
    declared, secret = tmp_path / "declared.txt", tmp_path / "secret.txt"
    declared.write_text("an input\n")
    secret.write_text("not an input\n")
    with LocalExecutor(namespaces=namespaces) as executor:
        content, stored = forking(executor, {"peek": warm("peek", str(declared), str(secret))})
        request = Request(
            name="peek",
            argv=("false",),
            env={},
            inputs={str(declared): content.add(declared)},
            outputs=("seen.txt",),
        )
        result = executor.execute(request, content, tmp_path / "peek.log")
    assert result.ok, (tmp_path / "peek.log").read_text()
    hidden = "hidden" if namespaces else "seen"
    assert stored == [f"{declared} seen\n{secret} {hidden}\n".encode()]
