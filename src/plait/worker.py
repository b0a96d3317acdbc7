"""`plait worker --remote URL`: a bot of the Remote Workers API (the Bots service BuildGrid
serves) that runs the actions leased to it in plait's sandbox.

It opens a bot session advertising its platform (`platform()`), then asks for work
(UpdateBotSession) in a loop. A lease carries a REAPI Action: the worker reads its Command and
input tree from the CAS, fetches the input files it does not have into a store of its own (its
cache between leases), runs the command with plait's local executor, uploads the outputs and the
command's output, and completes the lease with the ActionResult. A failure of the worker's own
(the CAS cannot give an input, say) completes the lease with an error status, which the server
reports as such: never as the command's failure.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from plait import digest
from plait.asdf.warm import WarmStrategy, from_portable
from plait.content import LocalContent
from plait.digest import Digest
from plait.executor import LocalExecutor
from plait.remote import (
    EXTRA,
    Endpoint,
    Remote,
    RemoteUnavailable,
    _reapi,
    action_platform,
    action_result,
    warn_to_stderr,
)
from plait.request import Input, Request
from plait.sandbox import resolve_program
from plait.store import Store

# How long an UpdateBotSession may wait for work; how often a worker running a lease says it
# lives (well inside the server's bot-session-keepalive-timeout); how long it waits after a
# failed call.
POLL_SECONDS = 15.0
HEARTBEAT_SECONDS = 4.0
RETRY_SECONDS = 1.0
# Logs up to this size go inline in the ActionResult, larger ones to the CAS.
INLINE_LOG_BYTES = 64 << 10
# How old a toolchain directory's digest may be: an upgrade under a running worker is seen
# within this.
TOOLCHAIN_SECONDS = 10.0
# Directory messages kept between leases.
DIRECTORIES_KEPT = 100_000


@functools.cache
def platform() -> dict[str, str]:
    """What this worker can run: the properties an Action's platform may ask for. The SBCL
    version is the one on PATH, as Lisp compiles ask for it (plait.asdf.graph)."""
    offered = action_platform()
    sbcl = shutil.which("sbcl")
    if sbcl is not None:
        said = subprocess.run(
            [sbcl, "--version"], capture_output=True, text=True, check=False
        ).stdout.split()
        if len(said) == 2 and said[0] == "SBCL":
            offered["sbcl"] = said[1]
    return offered


def _bots() -> tuple[Any, Any, Any]:
    from buildgrid._protos.google.devtools.remoteworkers.v1test2 import (
        bots_pb2,
        bots_pb2_grpc,
        worker_pb2,
    )

    return bots_pb2, bots_pb2_grpc, worker_pb2


class Worker:
    def __init__(self, endpoint: Endpoint, directory: Path, name: str) -> None:
        self.endpoint = endpoint
        self.remote = Remote(endpoint, warn_to_stderr)
        self.store = Store.open(directory, directory / "store")
        self.content = LocalContent(self.store)
        self.executor = LocalExecutor(namespaces=True)
        # Lisp compiles fork from warm SBCL servers, kept between leases, as they do on the
        # client (plait.asdf.warm).
        self.warm = WarmStrategy(lambda: self.executor.directory)
        self.executor.use(self.warm)
        self.name = name
        self.directory = directory
        self._directories: dict[str, Any] = {}  # input trees' Directory messages, by hash
        self._toolchains: dict[str, tuple[str, float]] = {}  # digest, when walked
        self.logs = directory / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self.executor.close()
        self.store.close()
        self.remote.close()

    def serve(self, leases: int | None = None) -> None:
        """Run leases until stopped (or, with `leases`, that many)."""
        bots, bots_grpc, workers = _bots()
        # Before the first lease, whose action would otherwise wait for it.
        self.remote.prepare()
        stub = bots_grpc.BotsStub(self.remote.channel)
        device = workers.Device(handle=self.name)
        device.properties.extend(
            workers.Device.Property(key=k, value=v) for k, v in sorted(platform().items())
        )
        session = bots.BotSession(bot_id=self.name, status=bots.BotStatus.Value("OK"))
        session.worker.devices.append(device)
        session = stub.CreateBotSession(
            bots.CreateBotSessionRequest(parent=self.endpoint.instance, bot_session=session)
        )
        # deploy/farm waits for this line.
        print(
            f"plait worker {self.name}: serving {self.endpoint} from {self.directory}", flush=True
        )
        done = 0
        while True:
            session = self._update(stub, bots, session)
            if leases is not None and done >= leases:
                return  # the last lease's completion is sent
            waiting = (bots.LeaseState.Value("PENDING"), bots.LeaseState.Value("ACTIVE"))
            lease = next((lease for lease in session.leases if lease.state in waiting), None)
            if lease is not None:
                session = self._lease(stub, bots, session, lease)
                done += 1

    def _update(
        self, stub: Any, bots: Any, session: Any, until: threading.Event | None = None
    ) -> Any:
        """The session after an UpdateBotSession: the server's answer, which may carry a new
        lease (it waits a while for one when the worker is idle). A server that does not
        answer is asked again (until `until` is set: then the session as it was)."""
        import grpc

        while until is None or not until.is_set():
            try:
                updated = stub.UpdateBotSession(
                    bots.UpdateBotSessionRequest(name=session.name, bot_session=session),
                    timeout=POLL_SECONDS,
                )
                self.remote.down = None  # heard from it: transfers may try again
                return updated
            except grpc.RpcError as e:  # restarted, slow or gone for now
                if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:  # else: no work came
                    print(f"plait worker {self.name}: {e}", file=sys.stderr, flush=True)
                    time.sleep(RETRY_SECONDS)
        return session

    def _lease(self, stub: Any, bots: Any, session: Any, lease: Any) -> Any:
        """Run `lease` while a thread tells the server every HEARTBEAT_SECONDS that this
        worker lives (else it gives the lease to another); the session with the lease
        completed. The lease runs on this thread, which owns the store's database."""
        lease.state = bots.LeaseState.Value("ACTIVE")
        latest = [session]
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                latest[0] = self._update(stub, bots, latest[0], stop)

        beating = threading.Thread(target=beat, daemon=True)
        beating.start()
        try:
            code, message, result = self._run(lease.payload)
        except Exception as e:  # a bug of the worker's own: still never the command's failure
            code, message, result = 13, f"plait worker {self.name}: {e!r}", None
        finally:
            stop.set()
            beating.join()
        session = latest[0]
        for held in session.leases:
            if held.id == lease.id:
                held.state = bots.LeaseState.Value("COMPLETED")
                held.status.code = code
                held.status.message = message
                if result is not None:
                    held.result.Pack(result)
        return session

    def _run(self, payload: Any) -> tuple[int, str, Any]:
        """Run one lease's Action: (0, "", its ActionResult), or the status of a failure of the
        worker's own (UNAVAILABLE), which the server reports as such and never as the
        command's failure."""
        re = _reapi()
        action = re.Action()
        try:
            if payload.Is(re.Action.DESCRIPTOR):
                payload.Unpack(action)
            else:
                d = re.Digest()
                payload.Unpack(d)
                action.ParseFromString(self._message(d))
            return 0, "", self._execute(action)
        except (RemoteUnavailable, _Missing, OSError) as e:
            return 14, f"plait worker {self.name}: {e}", None  # UNAVAILABLE
        except _Unfit as e:
            return 9, f"plait worker {self.name}: {e}", None  # FAILED_PRECONDITION

    def _messages(self, digests: list[Any]) -> dict[str, bytes]:
        """The messages of `digests`, by hash, each checked against its digest."""
        found = self.remote.blobs(digests) if digests else {}
        for d in digests:
            data = found.get(d.hash)
            if data is None:
                raise _Missing(f"the CAS has no {d.hash}")
            if hashlib.sha256(data).hexdigest() != d.hash:
                raise _Missing(f"the CAS's bytes for {d.hash} do not match it")
        return found

    def _message(self, d: Any) -> bytes:
        return self._messages([d])[d.hash]

    def _execute(self, action: Any) -> Any:
        re = _reapi()

        began = time.monotonic()
        command = re.Command()
        command.ParseFromString(self._message(action.command_digest))
        inputs = self._walk(action.input_root_digest)
        wrong = self.remote.fetch_into(
            self.content, (i.digest for i in inputs.values()), self.store.tmp
        )
        if wrong is None:
            raise _Missing("the CAS no longer has an input")
        if wrong:
            raise _Missing(f"the CAS's bytes for {next(iter(wrong)).hash} do not match it")
        request = self._request(action, command, inputs)
        log = self.logs / f"{request.name}.log"
        start, fetched = time.time(), time.monotonic()
        try:
            ran = self.executor.execute(request, self.content, log)
        finally:
            self.warm.plans.pop(request.name, None)
        executed = time.monotonic()
        if ran.error:
            raise OSError(ran.error)
        outputs = {d: self.content.file(d) for d, _ in ran.outputs.values()}
        stdout: Digest | bytes | None = None
        if log.is_file():
            # A short log travels in the ActionResult itself (stdout_raw), as REAPI allows.
            stdout = log.read_bytes() if log.stat().st_size <= INLINE_LOG_BYTES else None
            if stdout is None:
                stdout = digest.of_file(log)
                outputs[stdout] = log
        self.remote.send(outputs, {})
        exit_code = ran.exit_status if ran.exit_status is not None else -1
        result = action_result(ran.outputs, exit_code, self.name, start, time.time(), stdout)
        print(
            f"plait worker {self.name}: {request.name} exit {exit_code}:"
            f" inputs {fetched - began:.3f}s, run {executed - fetched:.3f}s,"
            f" outputs {time.monotonic() - executed:.3f}s",
            flush=True,
        )
        return result

    def _request(self, action: Any, command: Any, inputs: dict[str, Input]) -> Request:
        """The Request a lease's Action stands for: its Command, its relative inputs, and
        what the manifest under EXTRA adds (plait.remote._extra), checked against this
        machine: a toolchain or program that differs from the client's is this worker's
        failure, never the command's."""
        extra = {p: inputs.pop(p) for p in [p for p in inputs if p.startswith(f"{EXTRA}/")]}
        argv = list(command.arguments)
        named: dict[str, str] = {}
        toolchain: dict[str, str] = {}
        tool = None
        links: frozenset[str] = frozenset()
        manifest = extra.pop(f"{EXTRA}/request.json", None)
        if manifest is not None:
            wanted = json.loads(self.content.file(manifest.digest).read_bytes())
            for name, at in wanted["named"].items():
                # The file a word names is its blob in this worker's store.
                path = str(self.content.file(extra[f"{EXTRA}/{at}"].digest))
                argv = [path if word == name else word for word in argv]
                named[path] = name
            toolchain = wanted["toolchain"]
            for path, expected in toolchain.items():
                if self._toolchain(path) != expected:
                    raise _Unfit(f"its {path} is not what the client has there")
            tool = Digest.parse(wanted["tool"]) if wanted["tool"] else None
            links = frozenset(wanted["links"])
        root = f"{EXTRA}/root/"
        for path, given in extra.items():
            if path.startswith(root):
                inputs["/" + path[len(root) :]] = given
        env = {v.name: v.value for v in command.environment_variables}
        label = f"remote-{action.command_digest.hash[:12]}"
        strategy = wanted["strategy"] if manifest is not None else None
        if strategy is not None and strategy.get("kind") == "warm":
            # The server's argv names the core and the driver by the client's words: here,
            # the files in this worker's store.
            words = {n: p for p, n in named.items()}
            words.update(
                {p: str(self.content.file(i.digest)) for p, i in inputs.items() if p[0] == "/"}
            )
            self.warm.plans[label] = from_portable(strategy, words)
        if tool is not None:
            program = argv[0]
            found = Path(program) if program.startswith("/") else resolve_program(program, env)
            if found is None or self.store.file_digest(found) != tool:
                raise _Unfit(f"its {program} is not the client's")
        return Request(
            name=label,
            argv=tuple(argv),
            env=env,
            inputs=inputs,
            outputs=tuple(command.output_paths),
            links=links,
            tool=tool,
            named=named,
            toolchain=toolchain,
        )

    def _toolchain(self, path: str) -> str:
        """The digest of a toolchain directory (SBCL's), walked again once it is
        TOOLCHAIN_SECONDS old: walking it takes longer than many a compile."""
        now = time.monotonic()
        seen = self._toolchains.get(path)
        if seen is None or now - seen[1] > TOOLCHAIN_SECONDS:
            seen = (self.store.tree_digest(Path(path)), now)
            self._toolchains[path] = seen
        return seen[0]

    def _walk(self, root: Any) -> dict[str, Input]:
        """The files of the input tree `root`, by path: its directories fetched with one
        GetTree (any the server sent wrong, a level at a time in batches), those seen before
        kept from lease to lease."""
        inputs: dict[str, Input] = {}
        if len(self._directories) > DIRECTORIES_KEPT:
            self._directories.clear()
        if root.hash not in self._directories:
            self._keep(self.remote.tree(root))
        level = [(root, "")]
        while level:
            wanted = {d.hash: d for d, _ in level if d.hash not in self._directories}
            self._keep(self._messages(list(wanted.values())))
            below = []
            for d, prefix in level:
                directory = self._directories[d.hash]
                for f in directory.files:
                    inputs[prefix + f.name] = Input(
                        Digest(f.digest.hash, f.digest.size_bytes), f.is_executable
                    )
                below += [(sub.digest, f"{prefix}{sub.name}/") for sub in directory.directories]
            level = below
        return inputs

    def _keep(self, directories: dict[str, bytes]) -> None:
        """Keep Directory messages, by hash, for this lease and later ones."""
        re = _reapi()
        for hash_, data in directories.items():
            directory = re.Directory()
            directory.ParseFromString(data)
            self._directories[hash_] = directory


class _Missing(Exception):
    """The CAS cannot give what a lease needs."""


class _Unfit(Exception):
    """This worker cannot run the action as the client would (another SBCL, say)."""


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
