"""A remote cache over the Remote Execution API v2 (REAPI), through BuildGrid's client code.

An action's REAPI `Action` is derived from its `Request`, the material of plait's key: the
`Command` holds the argv (with the words that name a file of this machine by what it is, as the
key has them), the environment and the outputs; the input root is the Merkle tree of the relative
inputs' digests; the salt is plait's key itself, which covers the rest (absolute inputs, the
program, the toolchain, the key's version). So two machines that would compute one key ask the
server for one action, and nothing of one machine's paths reaches another's.

Before running an action the executor asks the Action Cache for it; a hit's outputs are
downloaded, each checked against its digest before it is kept, and the command does not run. With
`upload`, what ran here successfully is uploaded (the missing blobs, then the ActionResult); a
failure never is. A server that cannot be reached, or answers slowly, is given up for the rest of
the build after a bounded number of tries, with one warning: the build goes on here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

from plait import digest
from plait.content import Content, MissingContent
from plait.digest import Digest
from plait.errors import UsageError
from plait.executor import Executor, Result
from plait.request import Request

# What a reused result's reason says.
FROM_REMOTE = "restored from the remote cache"
# Seconds one call may take; a cache that answers slower is as good as gone.
CALL_TIMEOUT = 30.0
TRANSFER_TIMEOUT = 600.0
# The longest an action may run on the farm, and may wait there for a worker (none that can
# run it may be there at all): the action then runs here.
EXECUTE_TIMEOUT = 4 * 3600.0
QUEUE_TIMEOUT = 120.0
# Tries of a call that failed for want of the server (UNAVAILABLE), with backoff between them.
RETRIES = 2
# Blobs that add up to less than this are sent without asking the CAS which it lacks: one
# call instead of two, for an action's own messages and a compile's outputs.
ASK_FIRST_BYTES = 1 << 20


@dataclass(frozen=True)
class Endpoint:
    """A REAPI server: `url` as grpc://host:port (or grpcs://), and an instance name."""

    url: str
    instance: str = ""

    def __str__(self) -> str:
        return f"{self.url}/{self.instance}" if self.instance else self.url


def parse_endpoint(text: str, where: str = "--remote") -> Endpoint:
    """grpc://HOST:PORT[/INSTANCE] (grpcs:// for TLS)."""
    url = urlparse(text)
    if url.scheme not in ("grpc", "grpcs") or not url.hostname or url.port is None:
        raise UsageError(
            f"{where}: not a REAPI server address: {text!r}",
            hint="write grpc://HOST:PORT, or grpc://HOST:PORT/INSTANCE for a named instance",
        )
    return Endpoint(f"{url.scheme}://{url.hostname}:{url.port}", url.path.strip("/"))


@dataclass
class Settings:
    """What the build is to do with a remote server."""

    endpoint: Endpoint
    upload: bool = False
    execute: bool = False


class NoWorker(Exception):
    """No worker of the farm took an action in time."""


class NoExecution(Exception):
    """The server is a cache only: it has no Execution service."""


class RemoteUnavailable(Exception):
    """The server cannot be reached, or fails as a system: the build goes on without it."""


def _reapi() -> Any:
    """BuildGrid's generated REAPI messages, loaded only by builds that use a remote."""
    try:
        from buildgrid._protos.build.bazel.remote.execution.v2 import (
            remote_execution_pb2,
        )
    except ImportError as e:
        raise UsageError(
            f"the remote cache needs BuildGrid's client code, which is not installed ({e})",
            hint="install plait with its remote extra: pip install -e '.[remote]' (./setup does)",
        ) from None
    return remote_execution_pb2


@dataclass
class ReapiAction:
    """An action in REAPI terms: its digest, and every message blob it names."""

    digest: Any  # remote_execution_pb2.Digest
    blobs: dict[str, bytes] = field(default_factory=dict)  # hash -> serialized message


def _blob(data: bytes, blobs: dict[str, bytes]) -> Digest:
    """The digest of `data`, which goes into `blobs` for upload."""
    hash_ = hashlib.sha256(data).hexdigest()
    blobs[hash_] = data
    return Digest(hash_, len(data))


def _as_reapi(re: Any, d: Digest) -> Any:
    """plait's digest as REAPI's Digest message."""
    return re.Digest(hash=d.hash, size_bytes=d.size)


def _message_digest(re: Any, message: Any, blobs: dict[str, bytes]) -> Any:
    return _as_reapi(re, _blob(message.SerializeToString(deterministic=True), blobs))


# Where the input root of an Action a worker runs holds what it needs beyond the relative
# inputs (see `reapi_action`'s `named`).
EXTRA = ".plait-remote"


def reapi_action(
    request: Request,
    named: Mapping[str, Digest] | None = None,
    strategy: Mapping[str, Any] | None = None,
) -> ReapiAction:
    """The REAPI Action of `request` (see the module's docstring). With `named` (the digest
    of the file each of its `named` words names, by name), the Action a worker runs, whose
    input root also holds, under EXTRA, those files, the absolute inputs and a manifest, with
    the `strategy` that runs it here (plait.executor.Strategy.portable)."""
    re = _reapi()
    blobs: dict[str, bytes] = {}
    material = request.material()
    command = re.Command(
        arguments=material["argv"],
        environment_variables=[
            re.Command.EnvironmentVariable(name=k, value=v) for k, v in sorted(request.env.items())
        ],
        output_paths=sorted(request.outputs),
    )
    command.platform.properties.extend(
        re.Platform.Property(name=k, value=v)
        for k, v in sorted({**action_platform(), **request.platform}.items())
    )
    relative = {p: i for p, i in request.inputs.items() if not p.startswith("/")}
    files = {p: (i.digest, i.executable) for p, i in relative.items()}
    if named is not None:
        files.update(_extra(request, named, strategy, blobs))
    root = _tree(re, files, blobs)
    action = re.Action(
        command_digest=_message_digest(re, command, blobs),
        input_root_digest=root,
        platform=command.platform,
        salt=f"plait key {request.key()}".encode(),
    )
    return ReapiAction(_message_digest(re, action, blobs), blobs)


def needs_extra(request: Request) -> bool:
    """Whether a worker needs more than the Action a cache lookup uses to run `request`."""
    return bool(
        request.named
        or request.toolchain
        or request.tool
        or request.links
        or any(p.startswith("/") for p in request.inputs)
    )


def _extra(
    request: Request,
    named: Mapping[str, Digest],
    strategy: Mapping[str, Any] | None,
    blobs: dict[str, bytes],
) -> dict[str, tuple[Digest, bool]]:
    """The files under EXTRA: root/PATH for each absolute input /PATH, named/N for the N-th
    named file, and request.json, which says what the Command cannot: which argv words are
    named files, the toolchain and program the worker must have as this machine has them,
    and which inputs are only read (plait.worker reads it)."""
    files = {
        f"{EXTRA}/root{p}": (i.digest, i.executable)
        for p, i in request.inputs.items()
        if p.startswith("/")
    }
    names = sorted(set(request.named.values()))
    for n, name in enumerate(names):
        files[f"{EXTRA}/named/{n}"] = (named[name], False)
    manifest = json.dumps(
        {
            "named": {name: f"named/{n}" for n, name in enumerate(names)},
            "toolchain": dict(sorted(request.toolchain.items())),
            "tool": str(request.tool) if request.tool else None,
            "links": sorted(request.links),
            "strategy": strategy,
        },
        sort_keys=True,
    ).encode()
    files[f"{EXTRA}/request.json"] = (_blob(manifest, blobs), False)
    return files


def action_platform() -> dict[str, str]:
    """The platform properties an action asks of a worker: actions run on the system they
    were built for (`plait.worker.platform` is what a worker offers)."""
    return {"OSFamily": platform.system().lower()}


def _tree(re: Any, files: dict[str, tuple[Digest, bool]], blobs: dict[str, bytes]) -> Any:
    """The digest of the Directory holding `files` (relative paths), each directory's message
    put in `blobs`: names sorted, as REAPI requires for one tree to have one digest."""
    here: dict[str, tuple[Digest, bool]] = {}
    below: dict[str, dict[str, tuple[Digest, bool]]] = {}
    for path, entry in files.items():
        head, sep, rest = path.partition("/")
        if sep:
            below.setdefault(head, {})[rest] = entry
        else:
            here[head] = entry
    directory = re.Directory(
        files=[
            re.FileNode(
                name=name,
                digest=_as_reapi(re, d),
                is_executable=executable,
            )
            for name, (d, executable) in sorted(here.items())
        ],
        directories=[
            re.DirectoryNode(name=name, digest=_tree(re, sub, blobs))
            for name, sub in sorted(below.items())
        ],
    )
    return _message_digest(re, directory, blobs)


class Remote:
    """The server's CAS and Action Cache, from any thread. A call that fails for want of the
    server marks it gone (`down`): every later call raises RemoteUnavailable at once."""

    def __init__(self, endpoint: Endpoint, warn: Callable[[str], None]) -> None:
        self.endpoint = endpoint
        self._warn = warn
        self._lock = threading.Lock()
        self.down: str | None = None
        self._warned: set[str] = set()
        self._opened: dict[float, Any] = {}

    @property
    def channel(self) -> Any:
        """The channel for quick calls: each has CALL_TIMEOUT."""
        return self.channel_for(CALL_TIMEOUT)

    def channel_for(self, timeout: float) -> Any:
        """A channel whose every call has `timeout` seconds, opened by the first call that
        needs it: loading BuildGrid's client takes half a second, which a build that runs
        nothing does not pay."""
        with self._lock:
            if timeout not in self._opened:
                from buildgrid.server.client.channel import setup_channel

                self._opened[timeout], _ = setup_channel(self.endpoint.url, timeout=timeout)
            return self._opened[timeout]

    def prepare(self) -> None:
        """Load BuildGrid's transfer client (a third of a second of imports) and open its
        channel now, so that the first transfer does not wait for them."""
        import buildgrid.server.client.cas  # noqa: F401

        self.channel_for(TRANSFER_TIMEOUT)

    def close(self) -> None:
        for channel in self._opened.values():
            channel.close()

    def warn_once(self, kind: str, message: str) -> None:
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        self._warn(message)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """`call()`'s value; None for what the server does not have (NOT_FOUND)."""
        import grpc
        from buildgrid.server.exceptions import BgdError, NotFoundError, ResourceExhaustedError

        if self.down is not None:
            raise RemoteUnavailable(self.down)
        for attempt in range(RETRIES + 1):
            try:
                return call()
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    return None
                retry = code in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.ABORTED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
                if retry and attempt < RETRIES:
                    time.sleep(0.5 * 2**attempt)
                    continue
                self._give_up(what, f"{code.name}: {e.details()}")
            except NotFoundError:
                return None  # BuildGrid's client's own word for it, from a batch
            except BgdError as e:
                # BuildGrid's client's word for a failed call (the server too busy, say).
                if isinstance(e, ResourceExhaustedError) and attempt < RETRIES:
                    time.sleep(0.5 * 2**attempt)
                    continue
                self._give_up(what, f"{type(e).__name__}: {e}")
            except AssertionError:
                # BuildGrid's client asserts a transfer's size: a server that sent other bytes.
                return None
        raise AssertionError("unreachable")

    def _give_up(self, what: str, error: str) -> NoReturn:
        """Mark the server down for the rest of the build, saying so once."""
        why = f"{what}: {error}"
        with self._lock:
            self.down = self.down or why
        self.warn_once(
            "down",
            f"plait: warning: the remote cache at {self.endpoint} failed ({why}):"
            " building here without it",
        )
        raise RemoteUnavailable(why)

    def lookup(self, action: ReapiAction) -> Any:
        """The ActionResult cached for `action`, or None."""
        from buildgrid.server.client.actioncache import ActionCacheClient

        client = ActionCacheClient(self.channel)
        return self._call(
            "GetActionResult", lambda: client._get(self.endpoint.instance, action.digest)
        )

    def download(self, wanted: Iterable[tuple[Any, Path]]) -> bool:
        """Each blob (a REAPI Digest) to its path, batched where small, streamed where large;
        False if the server no longer has one (evicted since its result was looked up)."""
        from buildgrid.server.client.cas import Downloader

        def fetch() -> bool:
            downloader = Downloader(
                self.channel_for(TRANSFER_TIMEOUT), instance=self.endpoint.instance
            )
            try:
                for d, path in wanted:
                    downloader.download_file(d, str(path))
            finally:
                downloader.close()
            return True

        return self._call("downloading outputs", fetch) is True

    def blobs(self, digests: list[Any]) -> dict[str, bytes]:
        """The small blobs (messages) of `digests` the CAS has, by hash, in batches."""
        from buildgrid.server.client.cas import Downloader

        def fetch() -> dict[str, bytes]:
            downloader = Downloader(
                self.channel_for(TRANSFER_TIMEOUT), instance=self.endpoint.instance
            )
            try:
                return {d.hash: data for data, d in downloader.get_available_blobs(digests)}
            finally:
                downloader.close()

        found = self._call("downloading messages", fetch)
        return found if found is not None else {}

    def tree(self, root: Any) -> dict[str, bytes]:
        """The Directory messages of the input tree `root` (GetTree: one call, however deep),
        by hash; those the server's bytes do not match are left out."""
        from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc

        stub = remote_execution_pb2_grpc.ContentAddressableStorageStub(
            self.channel_for(TRANSFER_TIMEOUT)
        )
        request = _reapi().GetTreeRequest(instance_name=self.endpoint.instance, root_digest=root)

        def fetch() -> dict[str, bytes]:
            found = {}
            for page in stub.GetTree(request):
                for directory in page.directories:
                    data = directory.SerializeToString(deterministic=True)
                    found[hashlib.sha256(data).hexdigest()] = data
            return found

        found = self._call("GetTree", fetch)
        return found if found is not None else {}

    def missing(self, digests: list[Any]) -> list[Any]:
        """Which of `digests` the CAS does not have (FindMissingBlobs)."""
        from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc

        stub = remote_execution_pb2_grpc.ContentAddressableStorageStub(self.channel)
        request = _reapi().FindMissingBlobsRequest(
            instance_name=self.endpoint.instance, blob_digests=digests
        )
        found = self._call("FindMissingBlobs", lambda: stub.FindMissingBlobs(request))
        return list(found.missing_blob_digests) if found is not None else list(digests)

    def upload(self, files: Mapping[Digest, Path], messages: dict[str, bytes]) -> None:
        """Files, by digest (not computed again: a core is 50 MB), and message blobs, by hash,
        to the CAS."""
        from buildgrid.server.client.cas import Uploader

        re = _reapi()

        def put() -> None:
            uploader = Uploader(self.channel_for(TRANSFER_TIMEOUT), instance=self.endpoint.instance)
            try:
                for d, path in files.items():
                    with path.open("rb") as f:
                        uploader.put_blob(f, digest=_as_reapi(re, d), queue=True)
                for data in messages.values():
                    uploader.put_blob(_Bytes(data), queue=True)
            finally:
                uploader.close()

        self._call("uploading outputs", put)

    def send(self, files: Mapping[Digest, Path], blobs: Mapping[str, bytes]) -> None:
        """Put into the CAS what it lacks of `files` and of `blobs` (messages, by hash):
        FindMissingBlobs, then the uploads."""
        re = _reapi()
        on_disk = {d.hash for d in files}
        sizes = {d.hash: d.size for d in files}
        sizes.update({h: len(b) for h, b in blobs.items() if h not in on_disk})
        if not sizes:
            return
        if sum(sizes.values()) <= ASK_FIRST_BYTES:
            missing = set(sizes)  # sending them costs less than asking which to send
        else:
            digests = [re.Digest(hash=h, size_bytes=n) for h, n in sorted(sizes.items())]
            missing = {d.hash for d in self.missing(digests)}
        self.upload(
            {d: path for d, path in files.items() if d.hash in missing},
            {h: b for h, b in blobs.items() if h in missing and h not in on_disk},
        )

    def fetch_into(
        self, content: Content, wanted: Iterable[Digest], scratch: Path
    ) -> set[Digest] | None:
        """Each of `wanted` that `content` lacks, downloaded into `scratch`, checked against
        its digest and put into `content`: the digests whose bytes did not match (not kept),
        or None if the CAS no longer has one."""
        lacking = []
        for d in dict.fromkeys(wanted):
            try:
                content.file(d)
            except MissingContent:
                lacking.append(d)
        if not lacking:
            return set()
        re = _reapi()
        directory = Path(_mkdtemp(scratch))
        try:
            paths = [directory / str(n) for n in range(len(lacking))]
            requests = [(_as_reapi(re, d), path) for d, path in zip(lacking, paths, strict=True)]
            if not self.download(requests):
                return None
            wrong = set()
            for d, path in zip(lacking, paths, strict=True):
                if _digest_of(path) != d or content.put(path, known=d) != d:
                    wrong.add(d)
            return wrong
        finally:
            _rmtree(directory)

    def execute(self, action: ReapiAction) -> Any:
        """Execute `action` on the farm: its ExecuteResponse (None if none came). Raises
        NoExecution if the server does not execute actions at all, NoWorker if no worker took
        the action within QUEUE_TIMEOUT."""
        import grpc
        from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc

        re = _reapi()
        stub = remote_execution_pb2_grpc.ExecutionStub(self.channel_for(EXECUTE_TIMEOUT))
        # The client has looked the action up already (RemoteCache.execute).
        request = re.ExecuteRequest(
            instance_name=self.endpoint.instance,
            action_digest=action.digest,
            skip_cache_lookup=True,
        )
        stages = re.ExecutionStage
        waiting = {stages.UNKNOWN, stages.CACHE_CHECK, stages.QUEUED}

        def run() -> Any:
            call = stub.Execute(request)
            stage = [re.ExecutionStage.UNKNOWN]
            expired = threading.Event()

            def expire() -> None:
                if stage[0] in waiting:
                    expired.set()
                    call.cancel()

            timer = threading.Timer(QUEUE_TIMEOUT, expire)
            timer.daemon = True
            timer.start()
            try:
                for operation in call:
                    metadata = re.ExecuteOperationMetadata()
                    if operation.metadata.Unpack(metadata):
                        stage[0] = metadata.stage
                    if operation.done:
                        response = re.ExecuteResponse()
                        if operation.HasField("error"):
                            response.status.CopyFrom(operation.error)
                        else:
                            operation.response.Unpack(response)
                        return response
            except grpc.RpcError as e:
                if expired.is_set():
                    raise NoWorker(f"no worker took it within {QUEUE_TIMEOUT:.0f} s") from None
                if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise NoExecution(e.details()) from None
                raise
            finally:
                timer.cancel()
            return None

        return self._call("Execute", run)

    def publish(
        self,
        action: ReapiAction,
        outputs: Mapping[str, tuple[Digest, bool]],
        files: Mapping[Digest, Path],
        duration: float,
    ) -> None:
        """Put a result that ran here (exit 0, `duration` seconds ago until now) in the cache:
        what the CAS lacks of its outputs' `files` and its action's messages, then its
        ActionResult."""
        self.send(files, action.blobs)
        now = time.time()
        self.update(action, action_result(outputs, 0, "plait", now - duration, now))

    def update(self, action: ReapiAction, result: Any) -> None:
        from buildgrid.server.client.actioncache import ActionCacheClient

        client = ActionCacheClient(self.channel)
        self._call(
            "UpdateActionResult",
            lambda: client._update(self.endpoint.instance, action.digest, result),
        )


class _Bytes:
    """The file-like object BuildGrid's uploader reads a blob from."""

    def __init__(self, data: bytes) -> None:
        import io

        self._io = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._io.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._io.seek(offset, whence)

    def tell(self) -> int:
        return self._io.tell()


class RemoteCache:
    """An executor that asks the remote Action Cache before running a request; on a miss runs
    it on the farm (with `execute`, for a request a worker can run) or on `local`, and (with
    `upload`) fills the cache with what ran here."""

    def __init__(
        self,
        local: Executor,
        remote: Remote,
        upload: bool,
        scratch: Path,
        execute: bool = False,
        portable: Callable[[Request], dict[str, Any] | None] = lambda request: None,
        local_slots: int | None = None,
    ) -> None:
        self.local = local
        self.portable = portable
        # With more actions in flight than cores (the farm's), those that run here take turns.
        self._here = threading.BoundedSemaphore(local_slots) if local_slots else None
        self.remote = remote
        self.upload = upload
        self.scratch = scratch
        self.remote_execution = execute
        self._uploading = threading.Lock()
        self._there: set[str] = set()  # hashes the CAS has, as this build found
        self._digests: dict[tuple[str, int, int], Digest] = {}  # named files' digests

    def execute(self, request: Request, content: Content, log: Path) -> Result:
        start = time.monotonic()
        try:
            action = reapi_action(request)
            hit = self._hit(request, action, content, start)
        except RemoteUnavailable:
            action, hit = None, None
        if hit is not None:
            return hit
        if action is not None and self.remote_execution:
            try:
                ran = self._run_remotely(request, action, content, log, start)
            except RemoteUnavailable:
                ran = None
            except NoWorker as e:
                self.remote_execution = False
                self.remote.warn_once(
                    "no-worker",
                    f"plait: warning: {request.name}: {e}: it and the rest of the build run here",
                )
                ran = None
            except NoExecution as e:
                self.remote_execution = False
                self.remote.warn_once(
                    "no-execution",
                    f"plait: warning: {self.remote.endpoint} does not execute actions ({e}):"
                    " they run here, and its cache serves",
                )
                ran = None
            if ran is not None:
                return ran
        with self._here or contextlib.nullcontext():
            result = self.local.execute(request, content, log)
        if action is not None and self.upload and result.ok:
            with contextlib.suppress(RemoteUnavailable):  # said once; the build goes on
                files = {d: content.file(d) for d, _ in result.outputs.values()}
                self.remote.publish(action, result.outputs, files, result.duration)
        return result

    def cancel(self) -> None:
        self.local.cancel()

    def _hit(
        self, request: Request, action: ReapiAction, content: Content, start: float
    ) -> Result | None:
        cached = self.remote.lookup(action)
        if cached is None or cached.exit_code != 0:
            return None
        outputs = self._fetch(request, cached, content)
        if outputs is None:
            return None
        took = _duration(cached)
        return Result(
            0,
            took if took is not None else time.monotonic() - start,
            outputs=outputs,
            reused=FROM_REMOTE,
        )

    def _fetch(
        self, request: Request, result: Any, content: Content
    ) -> dict[str, tuple[Digest, bool]] | None:
        """The outputs an ActionResult names, each downloaded (unless here already), checked
        against its digest and kept; None if one is missing, gone, or not what it says."""
        files = {f.path: f for f in result.output_files}
        if sorted(files) != sorted(request.outputs):
            return None
        outputs = {
            name: (Digest(f.digest.hash, f.digest.size_bytes), f.is_executable)
            for name, f in sorted(files.items())
        }
        wrong = self.remote.fetch_into(content, (d for d, _ in outputs.values()), self.scratch)
        if wrong is None:
            return None  # evicted: the action runs here
        if wrong:
            name = next(n for n, (d, _) in outputs.items() if d in wrong)
            self.remote.warn_once(
                "poisoned",
                f"plait: warning: the remote cache at {self.remote.endpoint} sent bytes"
                f" for '{name}' of {request.name} that do not match their digest:"
                " not used; such actions run here",
            )
            return None
        with self._uploading:
            self._there.update(d.hash for d, _ in outputs.values())  # an input of others
        return outputs

    def _run_remotely(
        self, request: Request, lookup: ReapiAction, content: Content, log: Path, start: float
    ) -> Result | None:
        """Run `request` on the farm: upload what its CAS lacks, Execute, take the outputs.
        None (the action then runs here) when the farm fails as a system. A result that ran
        is cached under `lookup` too, when the Action the worker ran is another."""
        files = {i.digest: content.file(i.digest) for i in request.inputs.values()}
        action = lookup
        if needs_extra(request):
            named = self._named(request)
            if named is None:
                return None
            files.update(named.values())
            by_name = {name: d for name, (d, _) in named.items()}
            action = reapi_action(request, by_name, self.portable(request))
        with self._uploading:  # one core of 50 MB is sent once, not once per job slot
            self.remote.send(
                {d: path for d, path in files.items() if d.hash not in self._there},
                {h: b for h, b in action.blobs.items() if h not in self._there},
            )
            self._there.update(d.hash for d in files)
            self._there.update(action.blobs)
        response = self.remote.execute(action)
        if response is None or response.status.code != 0:
            why = response.status.message if response is not None else "no answer"
            self.remote.warn_once(
                "farm",
                f"plait: warning: the farm at {self.remote.endpoint} could not run {request.name}"
                f" ({why}): it runs here",
            )
            return None
        result = response.result
        log.parent.mkdir(parents=True, exist_ok=True)
        if result.HasField("stdout_digest") and result.stdout_digest.size_bytes:
            self.remote.download([(result.stdout_digest, log)])
        else:
            log.write_bytes(result.stdout_raw)
        took = _duration(result)
        duration = took if took is not None else time.monotonic() - start
        worker = result.execution_metadata.worker
        if result.exit_code != 0:
            return Result(result.exit_code, duration, where=f"on {worker}")
        outputs = self._fetch(request, result, content)
        if outputs is None:
            return None
        if action is not lookup:
            with contextlib.suppress(RemoteUnavailable):
                self.remote.update(lookup, result)
        return Result(0, duration, outputs=outputs, where=f"on {worker}")

    def _named(self, request: Request) -> dict[str, tuple[Digest, Path]] | None:
        """The digest and path of each file `request`'s argv names by what it is, by name;
        None while one is not there yet (the frontend may be saving it): the action runs
        here meanwhile, as it would have."""
        found: dict[str, tuple[Digest, Path]] = {}
        for word, name in request.named.items():
            path = Path(word)
            if not path.is_file():
                return None
            with self._uploading:
                stat = path.stat()
                seen = (word, stat.st_size, stat.st_mtime_ns)
                if seen not in self._digests:
                    self._digests[seen] = digest.of_file(path)
                found[name] = (self._digests[seen], path)
        return found


def action_result(
    outputs: Mapping[str, tuple[Digest, bool]],
    exit_code: int,
    worker: str,
    start: float,
    end: float,
    stdout: Digest | bytes | None = None,
) -> Any:
    """The ActionResult of a run: its outputs, exit code, log (its digest, or its bytes
    inline) and when and where it ran (a later hit takes the duration the scheduler uses from
    the times)."""
    re = _reapi()
    result = re.ActionResult(
        output_files=[
            re.OutputFile(
                path=path,
                digest=_as_reapi(re, d),
                is_executable=executable,
            )
            for path, (d, executable) in sorted(outputs.items())
        ],
        exit_code=exit_code,
    )
    if isinstance(stdout, bytes):
        result.stdout_raw = stdout
    elif stdout is not None:
        result.stdout_digest.hash = stdout.hash
        result.stdout_digest.size_bytes = stdout.size
    meta = result.execution_metadata
    meta.worker = worker
    meta.execution_start_timestamp.FromNanoseconds(int(start * 1e9))
    meta.execution_completed_timestamp.FromNanoseconds(int(end * 1e9))
    return result


def _duration(cached: Any) -> float | None:
    meta = cached.execution_metadata
    if not meta.HasField("execution_start_timestamp"):
        return None
    took = (
        meta.execution_completed_timestamp.ToNanoseconds()
        - meta.execution_start_timestamp.ToNanoseconds()
    )
    return float(max(took, 0)) / 1e9


def _digest_of(path: Path) -> Digest | None:
    from plait import digest

    try:
        return digest.of_file(path)
    except FileNotFoundError:
        return None


def _mkdtemp(directory: Path) -> str:
    import tempfile

    directory.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="remote-", dir=directory)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def warn_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
