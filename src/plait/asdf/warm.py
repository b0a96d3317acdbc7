"""Warm processes: servers that fork a worker per command, so that a command whose start is costly
(an SBCL that must load a compile's dependencies first) starts from an image that has done it.

A family of servers shares one server argv and environment. Its root runs the argv; each other
server was forked from a server of the family after performing more of the `loads` a command
begins with, so that commands sharing those first steps fork from the server that has done them
all. Each worker is a process of its own, in a session of its own, that sees nothing but what
the server it forked from had loaded, which is what its command would have loaded first.

The protocol is the one plait/asdf/serve.lisp speaks: Lisp forms on a fifo to each server,
lines back on another."""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.executor import Declined
from plait.request import Request
from plait.sandbox import Sandbox, kill_group

# Servers kept per family besides its root; the least recently used idle one goes first.
KEPT = 8

# Seconds a server may take to start, or to perform its loads, before plait stops waiting.
READY_SECONDS = 120.0


@dataclass(frozen=True)
class Warm:
    """How a builder's command may instead run as a process forked from a warm one (below):
    `server` starts a server that, for `entry` and `args`, does in a forked worker what the argv
    does after `loads`, the steps the command begins with, which a server may have done already.
    Other commands begin with the first `shared` of them: a server that has done those is
    worth making. Running the argv or forking a worker must make the same outputs.
    `reads[i]` are the linked inputs the i-th load reads: a sandbox needs them only when its
    worker, or a server it makes, performs that load itself."""

    server: tuple[str, ...]
    entry: str
    args: tuple[str, ...]
    loads: tuple[str, ...] = ()
    shared: int = 0
    reads: tuple[tuple[str, ...], ...] = ()


def from_portable(data: Mapping[str, Any], words: Mapping[str, str]) -> Warm:
    """The plan `WarmStrategy.portable` describes, on this machine: each word of the server's
    argv that `words` names (a file by its name or by the client's path) is the file here."""
    return Warm(
        server=tuple(words.get(w, w) for w in data["server"]),
        entry=data["entry"],
        args=tuple(data["args"]),
        loads=tuple(data["loads"]),
        shared=int(data["shared"]),
        reads=tuple(tuple(r) for r in data["reads"]),
    )


class Unavailable(Declined):
    """No server could run the command; the caller runs its argv instead."""


def lisp_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lisp_list(items: Sequence[str]) -> str:
    return "(" + " ".join(lisp_string(i) for i in items) + ")"


class _Waiter:
    """One request to a server: the pid it started and how that process ended."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.done = threading.Event()
        self.pid: int | None = None
        self.status: int | None = None
        # An eventfd that the one waiting for the end watches beside the worker's pidfd
        # (`watch_end`), written to once the end is known.
        self._woken: int | None = None
        self._lock = threading.Lock()

    def end(self, status: int | None) -> None:
        with self._lock:
            self.status = status
            self.done.set()
            if self._woken is not None:
                os.eventfd_write(self._woken, 1)

    def watch_end(self) -> int:
        """An eventfd that becomes readable once the end is known (at once if it is)."""
        woken = os.eventfd(0, os.EFD_CLOEXEC)
        with self._lock:
            self._woken = woken
            if self.done.is_set():
                os.eventfd_write(woken, 1)
        return woken

    def unwatch_end(self, woken: int) -> None:
        with self._lock:
            self._woken = None
        os.close(woken)


class _Server:
    """One server: its fifos, the loads it has performed, and the requests waiting on it."""

    def __init__(self, directory: Path, loads: tuple[str, ...], listen: bool = True) -> None:
        """`listen`: start reading its replies now; else `listen` does, before it can reply."""
        self.dir = directory
        self.loads = loads
        directory.mkdir()
        self.requests_path, self.replies_path = directory / "in", directory / "out"
        os.mkfifo(self.requests_path)
        os.mkfifo(self.replies_path)
        # Both ends held by plait, read-write, so that opening never blocks; the server's end
        # is learnt from its pid, after which "dead" is written to wake the reader.
        self._requests = os.open(self.requests_path, os.O_RDWR)
        self._replies = os.open(self.replies_path, os.O_RDWR)
        self.pid: int | None = None
        self.ready = threading.Event()
        self.dead = False
        self.busy = 0
        self.used = time.monotonic()
        self.parent: _Server | None = None
        self.ident = 0  # the number plait gave a forked server
        # Forked for a command that has ended: it is being waited for to be ready (`_settle`).
        self.settling = False
        # A root another process forked (the dump) before the core its argv names was saved:
        # waits until the core is there.
        self.saved: Callable[[], None] | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._lock = threading.Lock()
        self._listening = False
        if listen:
            self.listen()

    def listen(self) -> None:
        """Start reading the server's replies (once)."""
        with self._lock:
            if self._listening:
                return
            self._listening = True
        threading.Thread(target=self._read, daemon=True).start()

    def request(self, form: str, ident: int | None = None) -> _Waiter:
        """Send `form`; the waiter learns the replies that name `ident`."""
        waiter = _Waiter()
        with self._lock:
            if self.dead:
                raise Unavailable("the server has stopped")
            if ident is not None:
                self._waiters[ident] = waiter
            os.write(self._requests, (form + "\n").encode())
        return waiter

    def _read(self) -> None:
        with open(self._replies, "rb", closefd=False) as replies:
            for raw in replies:
                words = raw.decode(errors="replace").split()
                if len(words) == 2 and words[0] == "pid" and self.pid is None:
                    self.watch(int(words[1]))
                elif words == ["ready"]:
                    self.ready.set()
                elif words == ["dead"]:
                    break
                elif len(words) == 3 and words[0] in ("started", "exited"):
                    self._reply(words[0], int(words[1]), int(words[2]))
        with self._lock:
            self.dead = True
            waiters, self._waiters = list(self._waiters.values()), {}
            os.close(self._requests)
            os.close(self._replies)
        self.ready.set()
        for w in waiters:
            w.started.set()
            w.end(None)

    def watch(self, pid: int) -> None:
        """Learn of the end of the server, process `pid`, whose child it may not be."""
        self.pid = pid
        threading.Thread(target=self._watch, args=(pid,), daemon=True).start()

    def _watch(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            fd = os.pidfd_open(pid)
            select.select([fd], [], [])
            os.close(fd)
        self.stop()

    def _reply(self, what: str, ident: int, number: int) -> None:
        with self._lock:
            waiter = self._waiters.get(ident)
            if what == "exited":
                self._waiters.pop(ident, None)
        if waiter is None:
            return
        if what == "started":
            waiter.pid = number
            waiter.started.set()
        else:
            # A worker may say that it ended before its server says that it started it.
            waiter.started.set()
            waiter.end(number)

    def stop(self) -> None:
        """The server is gone or going: wake its reader, which fails whatever still waits."""
        self.listen()
        with self._lock:
            if self.dead:
                return
            self.dead = True
            os.write(self._replies, b"dead\n")

    def kill(self) -> None:
        if self.pid is not None:
            kill_group(self.pid)
        self.stop()


@dataclass(frozen=True)
class Hosted:
    """A root server that another process is to fork: the fifos it serves, where its output
    goes, and the environment it must run with (NAME=VALUE), as a started one would."""

    requests: Path
    replies: Path
    log: Path
    environment: tuple[str, ...]
    server: _Server = field(repr=False)


class WarmPool:
    """The servers of one build, started when a command first asks for them, or adopted."""

    def __init__(self, base: Path | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="plait-warm-", dir=base))
        # Servers run as a command would: their HOME and TMPDIR in a sandbox of their own.
        self._box = Sandbox(self.directory)
        self._box.populate({}, ())
        self._lock = threading.Lock()
        self._families: dict[tuple[object, ...], dict[tuple[str, ...], _Server]] = {}
        self._roots: list[subprocess.Popen[bytes]] = []
        self._hosted: list[_Server] = []
        self._ids = itertools.count(1)  # request and server numbers; next() is atomic
        self._cancelled = False
        # Where servers a command made are waited for once its status is known (`run`).
        self._settlers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="plait-settle")

    def host(self, env: Mapping[str, str]) -> Hosted:
        """A root server for another process to fork, with `env` over a sandbox's environment;
        `adopt` then says which servers it is."""
        server = _Server(self._box.work / f"s{next(self._ids)}", ())
        with self._lock:
            self._hosted.append(server)
        environment = self._box.environment(env)
        return Hosted(
            server.requests_path,
            server.replies_path,
            server.dir / "log",
            tuple(f"{k}={v}" for k, v in environment.items()),
            server,
        )

    def adopt(
        self,
        hosted: Hosted,
        argv: Sequence[str],
        env: Mapping[str, str],
        saved: Callable[[], None],
    ) -> None:
        """`hosted` is the root for the server argv `argv` in `env`, which runs only once the
        core is saved: `saved` waits for that, asking for the save (a command run instead of
        forked calls it)."""
        server = hosted.server
        server.saved = saved
        with self._lock:
            family = self._families.setdefault(_family(tuple(argv), env), {})
            if () not in family and not self._cancelled:
                family[()] = server
                return
        server.kill()

    def run(
        self,
        warm: Warm,
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
        stage: Callable[[int], int | None] = lambda first: None,
        release: Callable[[], None] = lambda: None,
    ) -> int | None:
        """Fork a worker for the command in `cwd`, its output to `log`; its exit status, or None
        if it could not be learnt. Unavailable if no worker was started. `stage(n)` is called
        first: `cwd` must then hold what the loads from the n-th on read. If `run` returns,
        `release` is called once nothing the pool started reads `cwd` any more, which may be
        later (a server it made meanwhile loads from there). When `stage` returns a pid, the
        worker joins that process's namespaces before it does anything else."""
        try:
            return self._run(warm, env, cwd, log, stage, release)
        except Unavailable:
            with self._lock:
                root = self._families.get(_family(warm.server, env), {}).get(())
            if root is not None and root.saved is not None:
                root.saved()  # the caller runs the argv instead, which needs the core
            raise

    def _run(
        self,
        warm: Warm,
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
        stage: Callable[[int], int | None],
        release: Callable[[], None],
    ) -> int | None:
        server, made = self._server(warm, env, cwd)
        returned = False
        try:
            ident = next(self._ids)
            args = [*warm.args, *warm.loads[len(server.loads) :]]
            try:
                namespaces = stage(len(server.loads))
                waiter = server.request(
                    f"(:run {ident} {lisp_string(str(cwd))} {lisp_string(str(log))}"
                    f" {lisp_string(warm.entry)} {lisp_list(args)}"
                    f" {namespaces if namespaces is not None else 'nil'})",
                    ident,
                )
            finally:
                # Asked after the worker: a server forks one request at a time, and forking a
                # server takes it twice as long as forking a worker. Idle servers are stopped
                # after too, off the path to the worker's start.
                if made is not None:
                    self._ask_fork(made, cwd)
                    with self._lock:
                        self._evict(self._families.get(_family(warm.server, env), {}))
            waiter.started.wait()
            if waiter.pid is None and waiter.status is None:
                raise Unavailable("the server stopped before starting the command")
            if waiter.pid is not None:  # else the worker said it ended before that it started
                self._wait_end(waiter, server)
            with contextlib.suppress(Unavailable):
                server.request(f"(:status {ident})")
            waiter.done.wait()
            returned = True
            return waiter.status
        finally:
            with self._lock:
                server.busy -= 1
                server.used = time.monotonic()
            if made is None:
                if returned:
                    release()
            elif returned:
                # The command's result is not kept waiting for the server it made to have
                # loaded from `cwd` (a chain of dependent compiles waited for it at each step),
                # nor for a thread to start; the next command that wants it waits (`_server`).
                made.settling = True
                self._settlers.submit(self._settle, made, release)
            else:
                self._settle(made)  # `cwd` stays the caller's, who runs the command itself

    def _wait_end(self, waiter: _Waiter, server: _Server) -> None:
        """Until the worker has said how it ended (it does before its exit unmaps its image), or
        has ended (killing it once the build is cancelled), or its server has, which leaves no
        way to know."""
        assert waiter.pid is not None
        try:
            fd = os.pidfd_open(waiter.pid)
        except ProcessLookupError:
            return
        woken = waiter.watch_end()
        try:
            while not waiter.done.is_set():
                if fd in select.select([fd, woken], [], [], 0.1)[0]:
                    return
                if self._cancelled:
                    kill_group(waiter.pid)
            if server.dead and waiter.status is None:
                kill_group(waiter.pid)  # a worker whose end cannot be learnt is stopped
        finally:
            waiter.unwatch_end(woken)
            os.close(fd)

    def _server(
        self, warm: Warm, env: Mapping[str, str], cwd: Path
    ) -> tuple[_Server, _Server | None]:
        """The ready server whose loads begin the command's longest, to fork its worker from (one
        whose maker has returned counts as ready: it is waited for); and the server being made,
        meanwhile, that has performed the `shared` loads the command begins with, when there is
        none yet: forked from the one with the longest of them, while `cwd` holds what they
        load."""
        made: _Server | None = None
        while True:
            with self._lock:
                if self._cancelled:
                    raise Unavailable("cancelled")
                family = self._families.setdefault(_family(warm.server, env), {})
                for loads, old in list(family.items()):
                    if old.dead and loads:
                        del family[loads]
                if () not in family:
                    family[()] = self._start(warm.server, env)
                root = family[()]
                if root.dead:  # not started again: what stopped it would stop it again
                    raise Unavailable("the warm server has stopped")
                servers = [s for s in family.values() if _begins(warm.loads, s.loads)]
                longest = max(servers, key=lambda s: len(s.loads))
                ready = [s for s in servers if s.ready.is_set() or s.settling]
                chosen = max(ready, key=lambda s: len(s.loads), default=root)
                chosen.busy += 1
                if made is None and len(longest.loads) < warm.shared:
                    made = self._new_server(longest, warm.loads[: warm.shared])
                    family[made.loads] = made
            if chosen.ready.wait(READY_SECONDS) and not chosen.dead:
                return chosen, made
            with self._lock:
                chosen.busy -= 1
            if chosen.loads and chosen.dead:
                continue  # a server that failed its loads: another is chosen
            if made is not None:  # never forked: nothing may be loaded from `cwd` yet
                made.stop()
                self._settle(made)
            raise Unavailable("the warm server stopped before it was ready")

    def _start(self, argv: tuple[str, ...], env: Mapping[str, str]) -> _Server:
        server = _Server(self._box.work / f"s{next(self._ids)}", ())
        with (server.dir / "log").open("wb") as log, contextlib.suppress(OSError):
            proc = subprocess.Popen(
                [*argv, str(server.requests_path), str(server.replies_path)],
                cwd=server.dir,
                env=self._box.environment(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._roots.append(proc)
            server.watch(proc.pid)
            return server
        server.stop()  # the server's program could not be run
        return server

    def _new_server(self, parent: _Server, loads: tuple[str, ...]) -> _Server:
        """A server that `parent` is to fork (`_ask_fork`) and that performs `loads`."""
        ident = next(self._ids)
        server = _Server(self._box.work / f"s{ident}", loads, listen=False)
        server.ident = ident
        server.parent = parent
        parent.busy += 1  # not stopped before it has forked the new one
        return server

    def _ask_fork(self, server: _Server, cwd: Path) -> None:
        """Ask the parent of `server` to fork it, loading from `cwd` what the parent lacks."""
        parent = server.parent
        assert parent is not None
        server.listen()
        try:
            parent.request(
                f"(:serve {server.ident} {lisp_string(str(cwd))}"
                f" {lisp_string(str(server.dir / 'log'))}"
                f" {lisp_string(str(server.requests_path))}"
                f" {lisp_string(str(server.replies_path))}"
                f" {lisp_list(server.loads[len(parent.loads) :])})",
            )
        except Unavailable:
            server.stop()

    def _settle(self, server: _Server, then: Callable[[], None] = lambda: None) -> None:
        """Wait until `server` has loaded what it loads from its maker's sandbox, or stopped;
        then call `then`."""
        deadline = time.monotonic() + READY_SECONDS
        while not server.ready.wait(0.05):
            # A parent that stops before forking the new server never will.
            parent = server.parent
            if (parent is not None and parent.dead and server.pid is None) or (
                time.monotonic() > deadline
            ):
                server.kill()
                break
        with self._lock:
            if server.parent is not None:
                server.parent.busy -= 1
                server.parent = None
        then()

    def _evict(self, family: dict[tuple[str, ...], _Server]) -> None:
        idle = sorted(
            (s for s in family.values() if s.loads and s.busy == 0 and s.ready.is_set()),
            key=lambda s: s.used,
        )
        for server in idle[: max(0, len(family) - 1 - KEPT)]:
            del family[server.loads]
            server.kill()

    def cancel(self) -> None:
        """Kill every worker running now (each `run` kills its own); their `run` calls then
        return, and no other starts."""
        self._cancelled = True

    def close(self) -> None:
        with self._lock:
            servers = [s for f in self._families.values() for s in f.values()]
            servers += self._hosted
            self._families.clear()
            self._hosted.clear()
        for s in servers:
            s.kill()
        for proc in self._roots:
            kill_group(proc.pid)
            proc.wait()
        self._settlers.shutdown(wait=True)  # each ends once its server is stopped
        shutil.rmtree(self.directory, ignore_errors=True)


def _family(server: tuple[str, ...], env: Mapping[str, str]) -> tuple[object, ...]:
    """What the servers of one family share: the root's argv and environment."""
    return (server, *sorted(env.items()))


def _begins(loads: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return loads[: len(prefix)] == prefix


class WarmStrategy:
    """The executor's strategy for the compiles that `plans` names: fork each from a warm
    server that has performed the loads it begins with (plait.executor.Strategy). Its pool is
    made, in the directory `base` gives, when first needed: an up-to-date build makes none."""

    def __init__(self, base: Callable[[], Path]) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._pool: WarmPool | None = None
        self._cancelled = False
        # Filled once the graph is known, before the build starts.
        self.plans: dict[str, Warm] = {}

    def pool(self) -> WarmPool | None:
        """The servers, made when first asked for; None once cancelled."""
        with self._lock:
            if self._pool is None and not self._cancelled:
                self._pool = WarmPool(self._base())
            return self._pool

    def staged(self, request: Request) -> tuple[tuple[str, ...], ...] | None:
        warm = self.plans.get(request.name)
        return None if warm is None else warm.reads

    def portable(self, request: Request) -> dict[str, Any] | None:
        warm = self.plans.get(request.name)
        if warm is None:
            return None
        return {
            "kind": "warm",
            "server": [request.named.get(word, word) for word in warm.server],
            "entry": warm.entry,
            "args": list(warm.args),
            "loads": list(warm.loads),
            "shared": warm.shared,
            "reads": [list(r) for r in warm.reads],
        }

    def run(
        self,
        request: Request,
        cwd: Path,
        log: Path,
        stage: Callable[[int], int | None],
        release: Callable[[], None],
    ) -> int | None:
        pool = self.pool()
        if pool is None:
            raise Unavailable("the build is stopping")
        return pool.run(self.plans[request.name], request.env, cwd, log, stage, release)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            pool = self._pool
        if pool is not None:
            pool.cancel()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
