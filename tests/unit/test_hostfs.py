"""Host paths a job names (core/hostfs.py): resolved as the kernel would, checked, and used
without ever following a symlink, whatever is planted where and when; stage-out archives
unpacked streaming, without escaping their destination."""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from containertracker import JobTemplate
from containertracker.backends._common import feed_stdin
from containertracker.core import hostfs, outputs
from containertracker.core.convert import template_to_spec
from containertracker.errors import DeniedByDrmsError, InvalidArgumentError
from tests.unit.test_core import ctx


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """R, the allowed directory, next to a directory outside it."""
    (tmp_path / "R").mkdir()
    (tmp_path / "outside").mkdir()
    return (tmp_path / "R").resolve()


def outside(root: Path) -> Path:
    return root.parent / "outside"


def untouched(root: Path) -> None:
    """Nothing was written outside R (neither in 'outside' nor next to R)."""
    assert list(outside(root).iterdir()) == []
    assert sorted(p.name for p in root.parent.iterdir()) == ["R", "outside"]


# -- resolve and check --------------------------------------------------------------------------


def test_dotdot_after_symlink_resolves_as_the_kernel_does(root: Path) -> None:
    # Attack 1: R/o/l -> a/b/c/d; then R/o/l/../../../x. Textually that is R/../x (outside);
    # the kernel reaches R/o/a/x. The resolved path is the kernel's, and that one is used.
    (root / "o/a/b/c/d").mkdir(parents=True)
    (root / "o/l").symlink_to("a/b/c/d")
    named = f"{root}/o/l/../../../x"
    resolved = hostfs.resolve(named, "/")
    assert resolved == f"{root}/o/a/x"
    hostfs.check_within(resolved, [str(root)], "output_path")
    hostfs.create_file(resolved)
    assert (root / "o/a/x").is_file()
    untouched(root)


def test_resolve_relative_paths_against_cwd_and_keeps_dev_null(root: Path) -> None:
    (root / "d").mkdir()
    assert hostfs.resolve("d/../f", str(root)) == f"{root}/f"
    assert hostfs.resolve("/dev/null", "/") == "/dev/null"


# -- /dev paths: only /dev/null is literal -----------------------------------------------------


@pytest.fixture
def shm(root: Path) -> Iterator[Path]:
    """A directory of its own in /dev/shm (a tmpfs an operator may allow), removed after."""
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm")
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="ct-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_dev_paths_are_resolved_and_checked_like_any_path(root: Path, shm: Path) -> None:
    # Attack: with roots [/dev/shm/...], '..' and symlinks below /dev/ escaped the root:
    # /dev/... was taken literally, never checked, and opened following symlinks.
    roots = [str(shm)]
    escape = f"{shm}/../../../etc/passwd"
    assert hostfs.resolve(escape, "/") == "/etc/passwd"
    with pytest.raises(DeniedByDrmsError, match="outside"):
        hostfs.check_within(hostfs.resolve(escape, "/"), roots, "input_path")
    (shm / "link").symlink_to(outside(root))
    with pytest.raises(DeniedByDrmsError, match="outside"):
        hostfs.check_within(hostfs.resolve(f"{shm}/link/out", "/"), roots, "output_path")
    with pytest.raises(InvalidArgumentError, match="symlink"):  # the unresolved path: never
        hostfs.write_file(f"{shm}/link/out", [b"evil"])  # followed either
    (outside(root) / "secret").write_bytes(b"secret")
    (shm / "in").symlink_to(outside(root) / "secret")
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.open_for_reading(f"{shm}/in")
    jt = JobTemplate(job_category="i", stage_in_files={f"{shm}/../../..": "/h"})
    _, plan = template_to_spec(jt, ctx(root))
    assert plan.stage_in == ["/"]
    with pytest.raises(DeniedByDrmsError, match="outside"):
        outputs.check(plan, roots)
    assert sorted(p.name for p in outside(root).iterdir()) == ["secret"]
    assert (outside(root) / "secret").read_bytes() == b"secret"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/tty", "/dev/random"])
def test_devices_are_refused_with_roots(device: str) -> None:
    resolved = hostfs.resolve(device, "/")
    with pytest.raises(DeniedByDrmsError, match="is a device"):
        hostfs.check_within(resolved, ["/dev", "/proc", "/tmp"], "input_path")
    hostfs.check_within(resolved, None, "input_path")  # the library default: allowed


def test_a_pipe_behind_dev_fd_resolves_to_its_fd_link_and_is_written() -> None:
    # /dev/stdout as a pipe (or a deleted file) has no path: it resolves to the process's
    # /proc/<pid>/fd/<n> link, which is opened (as the last component only) and not truncated.
    read_end, write_end = os.pipe()
    try:
        resolved = hostfs.resolve(f"/dev/fd/{write_end}", "/")
        assert resolved == f"/proc/{os.getpid()}/fd/{write_end}"
        with pytest.raises(DeniedByDrmsError, match="is a device"):
            hostfs.check_within(resolved, ["/proc"], "output_path")
        hostfs.create_file(resolved)
        hostfs.write_file(resolved, [b"to ", b"the pipe"])
        assert os.read(read_end, 100) == b"to the pipe"
    finally:
        os.close(read_end)
        os.close(write_end)
    with tempfile.TemporaryFile(dir="/tmp") as deleted:
        deleted.write(b"kept")
        deleted.flush()
        resolved = hostfs.resolve(f"/dev/fd/{deleted.fileno()}", "/")
        assert resolved == f"/proc/{os.getpid()}/fd/{deleted.fileno()}"
        with hostfs.open_for_reading(resolved) as f:
            assert f.read() == b"kept"


def test_a_character_device_is_used_without_roots() -> None:
    with hostfs.open_for_reading(hostfs.resolve("/dev/zero", "/")) as f:
        assert f.read(4) == bytes(4)
    hostfs.write_file(hostfs.resolve("/dev/null", "/"), [b"gone"])


def test_symlink_out_of_the_root_is_refused(root: Path) -> None:
    (root / "link").symlink_to(outside(root))
    resolved = hostfs.resolve(f"{root}/link/x", "/")
    with pytest.raises(DeniedByDrmsError, match="outside the host directories"):
        hostfs.check_within(resolved, [str(root)], "output_path")


@pytest.mark.parametrize(
    ("roots", "path", "allowed"),
    [
        (None, "/etc/passwd", True),
        ([], "/srv/x", False),
        ([], "/dev/null", True),
        (["/srv/jobs"], "/srv/jobs/a/b", True),
        (["/srv/jobs"], "/srv/jobs", True),
        (["/srv/jobs"], "/srv/jobs2/a", False),
        (["/srv/jobs"], "/dev/null", True),
        (["/srv/jobs"], "/dev/sda", False),
        (["/a", "/srv/jobs"], "/srv/jobs/x", True),
    ],
)
def test_check_within(roots: list[str] | None, path: str, allowed: bool) -> None:
    if allowed:
        hostfs.check_within(path, roots, "output_path")
    else:
        with pytest.raises(DeniedByDrmsError, match="output_path"):
            hostfs.check_within(path, roots, "output_path")


def test_verify_unchanged_sees_a_symlink_put_in_later(root: Path) -> None:
    (root / "in").mkdir()
    path = hostfs.resolve(f"{root}/in", "/")
    hostfs.verify_unchanged(path, "stage_in_files source")
    (root / "in").rmdir()
    (root / "in").symlink_to(outside(root))
    with pytest.raises(InvalidArgumentError, match="now resolves to"):
        hostfs.verify_unchanged(path, "stage_in_files source")


# -- writing and reading never follow a symlink ----------------------------------------------


def test_symlink_as_the_file_is_not_followed(root: Path) -> None:
    victim = outside(root) / "victim"
    path = f"{root}/out"
    (root / "out").symlink_to(victim)
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.write_file(path, [b"evil"])
    assert not victim.exists()
    victim.write_bytes(b"precious")
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.create_file(path)
    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_symlink_as_any_directory_is_not_followed(root: Path, depth: int) -> None:
    # The path was resolved and checked with real directories; then one of them (at any
    # depth) is swapped for a symlink out of R before the write.
    (root / "a/b/c").mkdir(parents=True)
    path = hostfs.resolve(f"{root}/a/b/c/out", "/")
    hostfs.check_within(path, [str(root)], "output_path")
    swapped = root / "/".join(["a", "b", "c"][: depth + 1])
    os.rename(swapped, root / "moved")
    swapped.symlink_to(outside(root))
    for name in ("b/c", "c", ""):
        (outside(root) / name).mkdir(parents=True, exist_ok=True)
    before = sorted(str(p) for p in outside(root).rglob("*"))
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.write_file(path, [b"evil"])
    assert sorted(str(p) for p in outside(root).rglob("*")) == before


def test_fifo_device_and_hard_link_are_not_written(root: Path) -> None:
    os.mkfifo(root / "fifo")
    with pytest.raises(InvalidArgumentError, match="not a regular file"):
        hostfs.create_file(f"{root}/fifo")  # and no hang waiting for a reader
    victim = outside(root) / "victim"
    victim.write_bytes(b"precious")
    os.link(victim, root / "hard")
    with pytest.raises(InvalidArgumentError, match="hard links"):
        hostfs.write_file(f"{root}/hard", [b"evil"])
    assert victim.read_bytes() == b"precious"


def test_write_truncates_and_streams(root: Path) -> None:
    path = f"{root}/out"
    Path(path).write_bytes(b"x" * 100)
    hostfs.write_file(path, (b"ab" for _ in range(3)))
    assert Path(path).read_bytes() == b"ababab"


def test_missing_directory_is_an_error_not_created(root: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        hostfs.create_file(f"{root}/missing/out")
    assert not (root / "missing").exists()


def test_read_does_not_follow_symlinks(root: Path) -> None:
    (outside(root) / "secret").write_bytes(b"secret")
    (root / "in").symlink_to(outside(root) / "secret")
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.open_for_reading(f"{root}/in", "input file")
    os.mkfifo(root / "fifo")
    with pytest.raises(InvalidArgumentError, match="not a regular file"):
        hostfs.open_for_reading(f"{root}/fifo", "input file")  # and no hang
    (root / "real").write_bytes(b"data")
    with hostfs.open_for_reading(f"{root}/real", "input file") as f:
        assert f.read() == b"data"


# -- stage-out archives -----------------------------------------------------------------------


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_single_file_to_a_path_and_into_a_directory(root: Path) -> None:
    data = tar_of((member("result.txt", mode=0o4755), b"hello"))
    hostfs.extract(chunks(data), "/out/result.txt", f"{root}/new/dir/copy.txt")
    copy = root / "new/dir/copy.txt"
    assert copy.read_bytes() == b"hello"
    assert stat.S_IMODE(copy.stat().st_mode) & 0o7000 == 0  # setuid dropped
    (root / "here").mkdir()
    hostfs.extract(chunks(data), "/out/result.txt", f"{root}/here")
    assert (root / "here/result.txt").read_bytes() == b"hello"


def test_directory_with_symlink_and_hard_link(root: Path) -> None:
    data = tar_of(
        (member("out", tarfile.DIRTYPE), None),
        (member("out/sub", tarfile.DIRTYPE, mode=0o7777), None),
        (member("out/sub/a", mode=0o6777), b"A"),
        (member("out/link", tarfile.SYMTYPE, linkname="sub/a"), None),
        (member("out/sub/dangling", tarfile.SYMTYPE, linkname="x/./y"), None),
        (member("out/hard", tarfile.LNKTYPE, linkname="out/sub/a"), None),
    )
    hostfs.extract(chunks(data), "/out", f"{root}/dest")
    dest = root / "dest"
    assert (dest / "sub/a").read_bytes() == b"A"
    assert stat.S_IMODE((dest / "sub/a").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "sub").stat().st_mode) & 0o7022 == 0
    assert os.readlink(dest / "link") == "sub/a"  # relative, no '..': created
    assert os.readlink(dest / "sub/dangling") == "x/./y"
    assert (dest / "hard").read_bytes() == b"A"
    assert (dest / "hard").stat().st_nlink == 1  # a copy, not a link
    untouched(root)


@pytest.mark.parametrize(
    ("evil", "match"),
    [
        ((member("out/link/x"), b"evil"), "symlink"),  # through the symlink just made
        ((member("out/../x"), b"evil"), "not a relative path"),
        ((member("/abs/x"), b"evil"), "outside it"),
        ((member("out/h", tarfile.LNKTYPE, linkname="out/../../outside/v"), None), "relative"),
        ((member("out/h", tarfile.LNKTYPE, linkname="out/link/v"), None), "symlink"),
        ((member("out/dev", tarfile.CHRTYPE, devmajor=1, devminor=3), None), "device or fifo"),
        ((member("out/fifo", tarfile.FIFOTYPE), None), "device or fifo"),
    ],
)
def test_evil_members_are_refused(
    root: Path, evil: tuple[tarfile.TarInfo, bytes | None], match: str
) -> None:
    (outside(root) / "v").write_bytes(b"precious")
    data = tar_of(
        (member("out", tarfile.DIRTYPE), None),
        (member("out/link", tarfile.SYMTYPE, linkname="sub"), None),
        evil,
    )
    with pytest.raises(InvalidArgumentError, match=match):
        hostfs.extract(chunks(data), "/out", f"{root}/dest")
    assert sorted(p.name for p in outside(root).iterdir()) == ["v"]
    assert (outside(root) / "v").read_bytes() == b"precious"
    assert sorted(p.name for p in root.parent.iterdir()) == ["R", "outside"]
    assert not (root / "dest/dev").exists() and not (root / "dest/fifo").exists()


@pytest.mark.parametrize(
    "target",
    ["/etc/shadow", "..", "../x", "a/../../x", "a/..", "./..", ""],
)
def test_symlink_members_that_could_lead_outside_are_refused(root: Path, target: str) -> None:
    # Attack: a job stages out `in -> /etc/shadow` (or `-> ../..`) next to another job's
    # stage-in source; the engine, re-resolving the bind at a restart, would mount the target.
    data = tar_of(
        (member("out", tarfile.DIRTYPE), None),
        (member("out/in", tarfile.SYMTYPE, linkname=target), None),
    )
    with pytest.raises(InvalidArgumentError, match="could lead outside"):
        hostfs.extract(chunks(data), "/out", f"{root}/x")
    assert list((root / "x").iterdir()) == []
    untouched(root)


@pytest.mark.parametrize("existing", ["file", "symlink"])
def test_an_existing_file_is_never_replaced_by_a_symlink(root: Path, existing: str) -> None:
    # Attack: R/x/in is another job's stage-in source (checked as a file); a stage-out onto
    # R/x with the member `in` as a symlink would swap it for a link.
    (root / "x").mkdir()
    if existing == "file":
        (root / "x/in").write_bytes(b"input")
    else:
        (root / "x/in").symlink_to("other")
    data = tar_of(
        (member("out", tarfile.DIRTYPE), None),
        (member("out/in", tarfile.SYMTYPE, linkname="elsewhere"), None),
    )
    with pytest.raises(InvalidArgumentError, match="exists already"):
        hostfs.extract(chunks(data), "/out", f"{root}/x")
    if existing == "file":
        assert (root / "x/in").read_bytes() == b"input"
    else:
        assert os.readlink(root / "x/in") == "other"


def test_symlinked_destination_is_refused(root: Path) -> None:
    (root / "dest").symlink_to(outside(root))
    data = tar_of((member("out", tarfile.DIRTYPE), None), (member("out/a"), b"A"))
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.extract(chunks(data), "/out", f"{root}/dest")
    single = tar_of((member("a"), b"A"))
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.extract(chunks(single), "/a", f"{root}/dest/a")
    with pytest.raises(InvalidArgumentError, match="symlink"):
        hostfs.extract(chunks(single), "/a", f"{root}/dest")
    untouched(root)


def test_symlink_top_and_empty_archive_are_refused(root: Path) -> None:
    link = tar_of((member("l", tarfile.SYMTYPE, linkname="/etc"), None))
    with pytest.raises(InvalidArgumentError, match="neither"):
        hostfs.extract(chunks(link), "/l", f"{root}/dest")
    with pytest.raises(InvalidArgumentError, match="empty"):
        hostfs.extract(iter([bytes(1024)]), "/x", f"{root}/dest")
    assert list(root.iterdir()) == []


def test_extraction_streams_in_bounded_memory(root: Path) -> None:
    size = 64 << 20
    header = tarfile.TarInfo("big")
    header.size = size

    def archive() -> Iterator[bytes]:
        yield header.tobuf(tarfile.GNU_FORMAT)
        block = b"z" * (1 << 20)
        for _ in range(size // len(block)):
            yield block
        yield bytes(2 * tarfile.BLOCKSIZE)

    tracemalloc.start()
    try:
        hostfs.extract(archive(), "/big", f"{root}/big")
        hostfs.write_file(f"{root}/log", (b"y" * (1 << 16) for _ in range(1024)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (root / "big").stat().st_size == size
    assert (root / "log").stat().st_size == 64 << 20
    assert peak < 8 << 20  # a few chunks, never the whole 64 MiB


# -- the template's paths, per task (core/convert.py + core/outputs.py) ----------------------


def test_each_array_task_path_is_resolved_and_checked_on_its_own(root: Path) -> None:
    # Attack 3: R/c/x1 -> outside. Task 0's path is inside R, task 1's is not: each task's
    # resolved path is what is checked (and stored in its plan, and used).

    (root / "c").mkdir()
    (root / "c/x1").symlink_to(outside(root))
    jt = JobTemplate(
        job_category="i",
        output_path=f"{root}/c/x$DRMAA2_INDEX$/out",
        stage_out_files={"/o": "$DRMAA2_WORKING_DIR$/c/x$DRMAA2_INDEX$/o"},
    )
    _, plan0 = template_to_spec(jt, ctx(root, task_id=0, array_id="a"))
    assert plan0.stdout_path == f"{root}/c/x0/out"
    assert plan0.stage_out == {"/o": f"{root}/c/x0/o"}
    outputs.check(plan0, [str(root)])
    _, plan1 = template_to_spec(jt, ctx(root, task_id=1, array_id="a"))
    assert plan1.stdout_path == f"{outside(root)}/out"
    with pytest.raises(DeniedByDrmsError, match="output_path"):
        outputs.check(plan1, [str(root)])
    outputs.check(plan1, None)  # the library default: any path (resolved all the same)


def test_stage_in_is_read_only_and_rechecked_before_start(root: Path) -> None:

    (root / "in").mkdir()
    (root / "stdin").write_bytes(b"data")
    jt = JobTemplate(job_category="i", stage_in_files={"in": "/in"}, input_path="stdin")
    spec, plan = template_to_spec(jt, ctx(root))
    assert [(b.host_path, b.read_only) for b in spec.binds] == [(f"{root}/in", True)]
    stdin = outputs.open_input(plan)
    assert stdin is not None
    with stdin:
        assert stdin.read() == b"data"
    (root / "in").rename(root / "was-in")
    (root / "in").symlink_to(outside(root))
    with pytest.raises(InvalidArgumentError, match="now resolves to"):
        outputs.open_input(plan)


def test_input_is_fed_in_pieces_in_bounded_memory(root: Path) -> None:
    # A job's input file of any size (another job's stage-out, say) is never read whole:
    # it is copied to the engine's attach connection a chunk at a time, then closed.
    size = 50 << 20
    with open(root / "in", "wb") as f:
        f.truncate(size)
    jt = JobTemplate(job_category="i", input_path="in")
    _, plan = template_to_spec(jt, ctx(root))
    ours, engine_side = socket.socketpair()
    received = 0

    def drain() -> None:
        nonlocal received
        while data := engine_side.recv(1 << 16):
            received += len(data)

    reader = threading.Thread(target=drain)
    reader.start()
    tracemalloc.start()
    try:
        stdin = outputs.open_input(plan)
        assert stdin is not None
        feed_stdin(ours, stdin)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        ours.close()  # (closed already, unless the feed failed: the reader must end)
        reader.join()
        engine_side.close()
    assert received == size  # all of it arrived, then EOF
    assert stdin.closed and ours.fileno() == -1
    assert peak < 4 << 20  # a few chunks, never the whole 50 MiB
