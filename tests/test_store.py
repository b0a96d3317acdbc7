"""The store: blobs, the stat cache, registration, the schema check, the project lock."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait import digest
from plait.errors import StoreError
from plait.store import CachedResult, Output, Store
from tests.support import age


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    (tmp_path / "p").mkdir()
    s = Store.open(tmp_path / "p")
    yield s
    s.close()


def test_blobs_are_named_by_content_and_read_only(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"content")
    d = store.put_file(f)
    assert d == digest.of_bytes(b"content")
    assert store.blob_path(d).read_bytes() == b"content"
    assert store.blob_path(d).stat().st_mode & 0o777 == 0o444
    assert [p.name for p in store.tmp.iterdir()] == [".owner"]  # nothing but its lock


def test_moving_a_file_into_the_blobs_takes_it(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"moved")
    d = store.put_file(f, move=True)
    assert store.has_blob(d)
    assert not f.exists()


def test_a_moved_file_is_hashed_once_and_a_known_digest_not_at_all(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download is hashed when it is checked; keeping it and reading it back hash nothing
    more (a definitions core is 50 MB)."""
    hashed: list[Path] = []
    of_file = digest.of_file

    def counting(path: Path) -> digest.Digest:
        if path.exists():  # else nothing is read: the blob is not there yet
            hashed.append(path)
        return of_file(path)

    monkeypatch.setattr(digest, "of_file", counting)
    f = tmp_path / "f"
    f.write_bytes(b"moved once")
    d = store.put_file(f, move=True)
    assert len(hashed) == 1
    assert store.sound_blob(d) and len(hashed) == 1  # known sound: not read again
    g = tmp_path / "g"
    g.write_bytes(b"checked by the caller")
    known = of_file(g)
    assert store.put_file(g, move=True, known=known) == known
    assert len(hashed) == 1
    assert store.blob_path(known).read_bytes() == b"checked by the caller"


def test_an_unchanged_file_is_hashed_once(store: Store) -> None:
    f = Path(store.project) / "a.c"
    f.write_text("int a;")
    age(f)
    first = store.file_digest(f)
    assert store.file_digest(f) == first
    assert store.hashed == [str(f)]


def test_a_changed_file_is_hashed_again(store: Store) -> None:
    f = Path(store.project) / "a.c"
    f.write_text("int a;")
    age(f)
    store.file_digest(f)
    f.write_text("int b;")
    assert store.file_digest(f) == digest.of_bytes(b"int b;")


def test_a_file_rewritten_within_the_timestamp_granularity_is_not_trusted(store: Store) -> None:
    f = Path(store.project) / "a.c"
    f.write_text("int a;")
    before = f.stat()
    assert store.file_digest(f) == digest.of_bytes(b"int a;")
    # Same size, same inode and, as on a coarse-grained file system, the same mtime.
    f.write_text("int b;")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert store.file_digest(f) == digest.of_bytes(b"int b;")


def test_the_stat_cache_survives_a_reopen(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    f = tmp_path / "p" / "a.c"
    f.write_text("x")
    age(f)
    s = Store.open(tmp_path / "p")
    s.file_digest(f)
    s.close()
    s = Store.open(tmp_path / "p")
    s.file_digest(f)
    assert s.hashed == []
    s.close()


def test_a_result_is_registered_only_when_its_blobs_are_in_place(store: Store) -> None:
    missing = Output("a.o", digest.of_bytes(b"never stored"), False)
    with pytest.raises(StoreError, match="blobs missing"):
        store.register("a", "k" * 64, {}, CachedResult((missing,), 1.0), ran=True)
    assert store.lookup("k" * 64) is None


def test_a_registered_result_is_found_by_its_key(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "o"
    f.write_bytes(b"object")
    out = Output("a.o", store.put_file(f), True)
    store.register("a", "k" * 64, {"argv": ["cc"]}, CachedResult((out,), 2.5), ran=True)
    assert store.lookup("k" * 64) == CachedResult((out,), 2.5)
    assert store.last_builds()["a"].material == {"argv": ["cc"]}


def test_where_outputs_were_installed_is_recorded_by_absolute_path(
    store: Store, tmp_path: Path
) -> None:
    f = tmp_path / "o"
    f.write_bytes(b"fasl")
    out = Output("out/a.fasl", store.put_file(f), False)
    elsewhere = tmp_path / "cache" / "a.fasl"
    result = CachedResult((out,), 1.0)
    store.register("a", "k" * 64, {}, result, ran=True, installed={"out/a.fasl": elsewhere})
    assert store.installed() == {elsewhere: out.digest.hash}
    store.forget_installed([elsewhere])
    assert store.installed() == {}


def test_a_dump_s_graph_is_recorded_apart_from_the_actions(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "graph.json"
    f.write_text("{}")
    graph = store.put_file(f)
    store.record_dump("d" * 64, graph)
    assert store.dump_graph("d" * 64) == graph
    assert store.lookup("d" * 64) is None  # no action's result
    assert store.dump_graph("e" * 64) is None


def test_a_store_of_schema_1_is_brought_up_to_date(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    Store.open(project).close()
    db = sqlite3.connect(project / ".plait" / "store.db")
    db.executescript(
        "DROP TABLE installed; DROP TABLE dumps;"
        "CREATE TABLE materialized (project TEXT NOT NULL, path TEXT NOT NULL,"
        " hash TEXT NOT NULL, PRIMARY KEY (project, path));"
        f"INSERT INTO materialized VALUES ('{project.resolve()}', 'build/x.o', 'abc');"
        "UPDATE meta SET value = '1' WHERE key = 'schema';"
    )
    db.commit()
    db.close()
    store = Store.open(project.resolve())
    try:
        assert store.installed() == {project.resolve() / "build/x.o": "abc"}
        assert store.dump_graph("d" * 64) is None
    finally:
        store.close()


def test_a_damaged_blob_is_never_materialized_and_is_removed(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "o"
    f.write_bytes(b"object")
    d = store.put_file(f)
    blob = store.blob_path(d)
    blob.chmod(0o644)
    blob.write_bytes(b"objecT")
    with pytest.raises(StoreError) as e:
        store.materialize(d, tmp_path / "restored", False)
    assert "is damaged; it was removed" in e.value.message
    assert not blob.exists() and not (tmp_path / "restored").exists()
    assert store.put_file(f) == d and store.blob_path(d).read_bytes() == b"object"


def test_a_store_of_another_schema_version_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    Store.open(tmp_path / "p").close()
    db = sqlite3.connect(tmp_path / "p" / ".plait" / "store.db")
    db.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as e:
        Store.open(tmp_path / "p")
    assert "schema version 999" in e.value.message
    assert "remove" in e.value.hint


def test_a_corrupt_database_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "p" / ".plait").mkdir(parents=True)
    (tmp_path / "p" / ".plait" / "store.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store database"):
        Store.open(tmp_path / "p")


def test_the_project_lock_makes_a_second_build_wait(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    first, second = Store.open(tmp_path / "p"), Store.open(tmp_path / "p")
    first.lock()
    waited = threading.Event()
    got = threading.Event()

    def take() -> None:
        second.lock(on_wait=waited.set)
        got.set()

    thread = threading.Thread(target=take)
    thread.start()
    assert waited.wait(5)
    time.sleep(0.05)
    assert not got.is_set()
    first.unlock()
    assert got.wait(5)
    thread.join()
    first.close()
    second.close()


def test_plaits_materializing_the_same_file_at_once_each_succeed(tmp_path: Path) -> None:
    # Two builds of different projects install the same fasl where ASDF looks (the user's
    # cache) at the same time: each writes it through a temporary name of its own.
    content = os.urandom(1 << 21)
    stores = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        stores.append(Store.open(tmp_path / name, root=tmp_path / f"store-{name}"))
    (tmp_path / "f").write_bytes(content)
    d = stores[0].put_file(tmp_path / "f")
    assert stores[1].put_file(tmp_path / "f") == d
    dest = tmp_path / "cache" / "x.fasl"
    failures: list[BaseException] = []

    def install(s: Store) -> None:
        try:
            for _ in range(40):
                s.materialize(d, dest, executable=False)
        except BaseException as e:  # collected, and asserted below
            failures.append(e)

    threads = [threading.Thread(target=install, args=(s,)) for s in stores for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert failures == []
    assert dest.read_bytes() == content
    assert [p.name for p in dest.parent.iterdir()] == ["x.fasl"]  # no temporary file left


RESTORE_THEN_HANG = """
import shutil, sys, time
from pathlib import Path
from plait import digest
from plait.store import Store

project, dest = Path(sys.argv[1]), Path(sys.argv[2])
store = Store.open(project)
d = store.put_file(project / "big.bin")

def half_then_hang(src, tmp):
    with open(tmp, "wb") as f:
        f.write(b"half")
        f.flush()
    print("writing", flush=True)
    time.sleep(60)

shutil.copyfile = half_then_hang
store.materialize(d, dest, False)
"""


def test_a_restore_killed_midway_leaves_nothing_in_the_user_s_directories(
    tmp_path: Path,
) -> None:
    project, cache = tmp_path / "p", tmp_path / "asdf-cache"
    project.mkdir()
    cache.mkdir()
    (project / "big.bin").write_bytes(b"x" * 100_000)
    for dest in (project / "out" / "big.bin", cache / "big.fasl"):
        with subprocess.Popen(
            [sys.executable, "-c", RESTORE_THEN_HANG, str(project), str(dest)],
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
            proc.kill()
        assert [p.name for p in dest.parent.iterdir()] == []
    # What it was writing was in its scratch directory, which the next plait removes.
    Store.open(project).close()
    assert [p.name for p in (project / ".plait" / "tmp").iterdir()] == []
