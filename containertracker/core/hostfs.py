"""Host paths a job names: resolved once, checked, and then used without following symlinks.

A job's template names host files (stdin, stdout, stderr, stage-in sources, stage-out
destinations), and the job itself may change the host directories they lie in (a stage-out
copy can create symlinks there). So:

* :func:`resolve` turns a path into the absolute, symlink-free path the kernel would reach
  now (symlinks and ``..`` resolved in the kernel's order, as :func:`os.path.realpath` does);
  this is the path that is checked, stored in the job's plan and used from then on;
* :func:`check_within` refuses a resolved path outside the allowed roots;
* every later use (:func:`create_file`, :func:`write_file`, :func:`read_file`,
  :func:`extract`) walks the resolved path from ``/`` one component at a time with
  ``O_NOFOLLOW``, relative to the directory opened before: a symlink met anywhere (planted
  between the check and the use, say) makes the use fail, it is never followed. What is
  written is therefore written exactly where the check said.

Paths under ``/dev/`` name devices and are taken literally (``/dev/null`` is always allowed;
other devices only without roots). Linux only (``O_NOFOLLOW``, ``dir_fd``).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from containertracker.errors import DeniedByDrmsError, InvalidArgumentError

__all__ = [
    "CHUNK_SIZE",
    "check_within",
    "create_file",
    "extract",
    "normalize_roots",
    "read_file",
    "resolve",
    "verify_unchanged",
    "write_file",
]

CHUNK_SIZE = 1 << 16
"""Bytes copied at a time: what a job writes never sits in memory whole."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _is_device(path: str) -> bool:
    return path.startswith("/dev/")


def resolve(path: str, cwd: str) -> str:
    """The absolute, symlink-free form of ``path`` (relative paths against ``cwd``).

    Existing components are resolved as the kernel would (a symlink first, then ``..``
    applied to its target); a missing tail is kept as written, minus ``.`` and ``..``.
    ``/dev/...`` paths are device names and come back unchanged.
    """
    if _is_device(path):
        return path
    return os.path.realpath(os.path.join(cwd, path))


def normalize_roots(roots: Iterable[str | os.PathLike[str]] | None) -> tuple[str, ...] | None:
    """Roots resolved once (the operator's own symlinks in them are fine); None stays None."""
    if roots is None:
        return None
    return tuple(os.path.realpath(os.fspath(root)) for root in roots)


def check_within(path: str, roots: Sequence[str] | None, what: str) -> None:
    """Refuse a resolved ``path`` that is not below one of ``roots`` (None: any path).

    ``/dev/null`` is always allowed: nothing is read from or kept in it.

    Raises:
        DeniedByDrmsError: the path lies outside every root (or there are no roots).
    """
    if roots is None or path == os.devnull:
        return
    if not roots:
        raise DeniedByDrmsError(
            f"{what} names a host path ({path!r}), and this tracker allows none "
            "(host_path_roots is empty)"
        )
    if not any(PurePosixPath(path).is_relative_to(root) for root in roots):
        raise DeniedByDrmsError(
            f"{what} {path!r} is outside the host directories allowed "
            f"({', '.join(roots)}; symlinks and '..' resolved)"
        )


def verify_unchanged(path: str, what: str) -> None:
    """Refuse a resolved path that no longer resolves to itself (a symlink was put in).

    Raises:
        InvalidArgumentError: it now resolves elsewhere.
    """
    if not _is_device(path) and os.path.realpath(path) != path:
        raise InvalidArgumentError(
            f"{what} {path!r} now resolves to {os.path.realpath(path)!r} (a symlink was "
            "put in its way since the job was submitted); refusing to use it"
        )


# -- walking without following symlinks -------------------------------------------------------


def _components(path: str) -> list[str]:
    if not path.startswith("/"):
        raise InvalidArgumentError(f"host path {path!r} is not absolute")
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise InvalidArgumentError(f"host path {path!r} is not resolved ('.' or '..' in it)")
    return parts


def _refusal(exc: OSError, shown: str) -> InvalidArgumentError:
    """Why ``shown`` (a path, up to the component that failed) could not be opened."""
    if exc.errno == errno.ELOOP:
        return InvalidArgumentError(f"{shown} is a symlink, which is never followed")
    if exc.errno == errno.ENXIO:  # a fifo without reader (opened non-blocking), a device
        return InvalidArgumentError(f"{shown} is not a regular file")
    if exc.errno == errno.ENOTDIR:
        return InvalidArgumentError(f"{shown} is not a directory")
    return InvalidArgumentError(f"{shown}: {exc.strerror}")


@contextmanager
def _explained(doing: str, path: str) -> Iterator[None]:
    """Errors while ``doing`` (e.g. "create output file") say so and name ``path``."""
    try:
        yield
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"cannot {doing} {path}: {exc}") from exc


def _is_symlink_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_dir_at(dir_fd: int, name: str, *, create: bool, shown: str, path: str) -> int:
    """Open directory ``name`` below ``dir_fd`` without following a symlink (creating it)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except NotADirectoryError as exc:
        # Linux answers O_DIRECTORY|O_NOFOLLOW on a symlink with ENOTDIR: say which it was.
        loop = OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        reason = loop if _is_symlink_at(dir_fd, name) else exc
        raise _refusal(reason, shown) from None
    except FileNotFoundError:
        if not create:
            raise InvalidArgumentError(f"directory {shown} does not exist") from None
        try:
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        except FileExistsError:
            pass  # made meanwhile: opened (without following) below
        except OSError as exc:
            raise _refusal(exc, shown) from exc
        return _open_dir_at(dir_fd, name, create=False, shown=shown, path=path)
    except OSError as exc:
        raise _refusal(exc, shown) from exc


def _walk(start_fd: int, parts: Sequence[str], *, create: bool, path: str, base: str) -> int:
    """A new fd of the directory ``parts`` below ``start_fd``; the caller closes it."""
    fd = os.dup(start_fd)
    shown = base
    try:
        for part in parts:
            shown = f"{shown.rstrip('/')}/{part}"
            next_fd = _open_dir_at(fd, part, create=create, shown=shown, path=path)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _parent_dir(path: str, *, create: bool) -> Iterator[tuple[int, str]]:
    """The fd of ``path``'s parent directory (reached without following symlinks; created
    if ``create``) and the last component."""
    parts = _components(path)
    if not parts:
        raise InvalidArgumentError("the host path '/' is a directory, not a file")
    root = os.open("/", _DIR_FLAGS)
    try:
        fd = _walk(root, parts[:-1], create=create, path=path, base="/")
    finally:
        os.close(root)
    try:
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _open_regular(dir_fd: int, name: str, mode: int, path: str) -> int:
    """Create or open ``name`` in ``dir_fd`` for writing, truncated, without following a
    symlink; only a regular file with no other hard link is accepted (never a fifo or device,
    never a second name of some other file)."""
    try:
        fd = os.open(name, _WRITE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise _refusal(exc, path) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgumentError(f"{path} is not a regular file")
        if info.st_nlink > 1:
            raise InvalidArgumentError(f"{path} has other hard links (not written through)")
        os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_file(path: str, what: str = "output file") -> None:
    """Create (or truncate) the resolved file ``path``, parent directories as they are.

    Raises:
        InvalidArgumentError: a symlink on the way, a missing directory, not a regular file
            (or one with other hard links), or the file system refused.
    """
    with open_for_writing(path, what):
        pass


@contextmanager
def open_for_writing(path: str, what: str = "output file") -> Iterator[BinaryIO]:
    """The resolved file ``path`` opened for writing, truncated (see :func:`create_file`).

    ``/dev/...`` paths are opened as they are (devices; a check refused them if not wanted).
    """
    with _explained(f"write {what}", path):
        if _is_device(path):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise _refusal(exc, path) from exc
        else:
            with _parent_dir(path, create=False) as (dir_fd, name):
                fd = _open_regular(dir_fd, name, 0o666, path)
    with open(fd, "wb", buffering=0, closefd=True) as f:
        yield f


def write_file(path: str, chunks: Iterable[bytes], what: str = "output file") -> None:
    """Write ``chunks`` to the resolved file ``path`` as they come (see :func:`create_file`)."""
    with open_for_writing(path, what) as f:
        for chunk in chunks:
            f.write(chunk)


def read_file(path: str, what: str = "input file") -> bytes:
    """The contents of the resolved regular file ``path``, opened without following symlinks.

    Raises:
        InvalidArgumentError: a symlink on the way, missing, or not a regular file.
    """
    with _explained(f"read {what}", path):
        if _is_device(path):
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise _refusal(exc, path) from exc
        with _parent_dir(path, create=False) as (dir_fd, name):
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise _refusal(exc, path) from exc
        with open(fd, "rb", closefd=True) as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidArgumentError(f"{path} is not a regular file")
            os.set_blocking(fd, True)
            return f.read()


# -- stage-out: a tar stream unpacked without following symlinks ------------------------------


class _ChunkReader(io.RawIOBase):
    """An iterator of byte chunks as a readable raw file (for tarfile's stream mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _file_mode(member: tarfile.TarInfo) -> int:
    # No setuid/setgid/sticky bits and no group/other write: a job must not plant a setuid
    # binary on the host, nor a file others may change.
    return (member.mode & 0o755) | 0o600


def _member_parts(name: str, source: str) -> list[str]:
    parts = [part for part in name.split("/") if part and part != "."]
    if name.startswith("/") or ".." in parts or not parts:
        raise InvalidArgumentError(
            f"stage-out of {source}: the archive member {name!r} is not a relative path "
            "inside it; refusing it"
        )
    return parts


def _copy_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, dir_fd: int, name: str, path: str
) -> None:
    data = archive.extractfile(member)
    assert data is not None  # a regular file member
    fd = _open_regular(dir_fd, name, 0o600, path)
    with open(fd, "wb", buffering=0, closefd=True) as out:
        shutil.copyfileobj(data, out, CHUNK_SIZE)
        os.fchmod(fd, _file_mode(member))


def extract(chunks: Iterable[bytes], source: str, destination: str) -> None:
    """Unpack the engine's tar of the container path ``source`` to the resolved host path
    ``destination``, streaming (memory stays flat whatever its size).

    A file is written as ``destination`` (or into it, if that is a directory); a directory's
    contents go into ``destination``, which is created with any missing parents. Nothing is
    ever written through a symlink: every directory is entered with ``O_NOFOLLOW`` relative
    to its parent. Symlink members are created as symlinks (never followed afterwards);
    hard-link members become copies of the file they link to; setuid, setgid and sticky bits
    and group/other write are dropped; ownership is not copied.

    Raises:
        InvalidArgumentError: an empty archive, a source that is neither file nor directory,
            a member with an absolute or ``..`` name, a device or fifo member, a symlink or
            non-directory met on the way (what was written before stays).
        tarfile.TarError: the engine's archive is corrupt.
    """
    with _explained(f"stage out {source} to", destination):
        _extract(chunks, source, destination)


def _extract(chunks: Iterable[bytes], source: str, destination: str) -> None:
    with ExitStack() as stack:
        reader = io.BufferedReader(_ChunkReader(chunks), CHUNK_SIZE)
        archive = stack.enter_context(tarfile.open(fileobj=reader, mode="r|", bufsize=CHUNK_SIZE))
        top = archive.next()
        if top is None:
            raise InvalidArgumentError(f"{source} is empty")
        if top.isfile():
            dir_fd, name = stack.enter_context(_parent_dir(destination, create=True))
            try:
                existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            target = destination
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                inner = _member_parts(top.name, source)[-1]
                dir_fd = _open_dir_at(
                    dir_fd, name, create=False, shown=destination, path=destination
                )
                stack.callback(os.close, dir_fd)
                name, target = inner, f"{destination.rstrip('/')}/{inner}"
            _copy_member(archive, top, dir_fd, name, target)
            return
        if not top.isdir():
            raise InvalidArgumentError(
                f"stage-out copies files and directories; {source} in the container is "
                "neither (a symlink or special file)"
            )
        root = os.open("/", _DIR_FLAGS)
        try:
            dest_fd = _walk(root, _components(destination), create=True, path=destination, base="/")
        finally:
            os.close(root)
        stack.callback(os.close, dest_fd)
        prefix = top.name.rstrip("/") + "/"
        while (member := archive.next()) is not None:
            _extract_member(archive, member, prefix, source, destination, dest_fd)
            # Stream mode keeps every header seen; a huge tree must not grow memory.
            archive.members.clear()  # type: ignore[attr-defined]  # (not in typeshed)


def _extract_member(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    prefix: str,
    source: str,
    destination: str,
    dest_fd: int,
) -> None:
    if not member.name.startswith(prefix):
        raise InvalidArgumentError(
            f"stage-out of {source}: the archive member {member.name!r} lies outside it"
        )
    parts = _member_parts(member.name.removeprefix(prefix), source)
    path = "/".join([destination.rstrip("/"), *parts])
    parent = _walk(dest_fd, parts[:-1], create=True, path=path, base=destination)
    try:
        name = parts[-1]
        if member.isdir():
            os.close(_open_dir_at(parent, name, create=True, shown=path, path=path))
        elif member.isfile():
            _copy_member(archive, member, parent, name, path)
        elif member.issym():
            _replace_with_symlink(parent, name, member.linkname, path)
        elif member.islnk():
            _copy_hard_link(member, prefix, source, destination, dest_fd, parent, name, path)
        else:
            raise InvalidArgumentError(
                f"stage-out of {source}: {member.name!r} is a device or fifo; only files, "
                "directories and symlinks are copied"
            )
    finally:
        os.close(parent)


def _replace_with_symlink(dir_fd: int, name: str, target: str, path: str) -> None:
    try:
        existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise InvalidArgumentError(f"{path!r} is a directory; not replacing it by a symlink")
        os.unlink(name, dir_fd=dir_fd)
    os.symlink(target, name, dir_fd=dir_fd)


def _copy_hard_link(
    member: tarfile.TarInfo,
    prefix: str,
    source: str,
    destination: str,
    dest_fd: int,
    parent: int,
    name: str,
    path: str,
) -> None:
    """A hard link becomes a copy of its (already extracted) target, read without following
    symlinks from below the destination: a link never reaches outside it."""
    linked = _member_parts(member.linkname.removeprefix(prefix), source)
    linked_path = "/".join([destination.rstrip("/"), *linked])
    linked_dir = _walk(dest_fd, linked[:-1], create=False, path=linked_path, base=destination)
    try:
        src = os.open(linked[-1], _READ_FLAGS, dir_fd=linked_dir)
    except OSError as exc:
        raise _refusal(exc, linked_path) from exc
    finally:
        os.close(linked_dir)
    with open(src, "rb", closefd=True) as data:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgumentError(f"{linked_path!r} is not a regular file")
        os.set_blocking(src, True)
        fd = _open_regular(parent, name, 0o600, path)
        with open(fd, "wb", buffering=0, closefd=True) as out:
            shutil.copyfileobj(data, out, CHUNK_SIZE)
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
