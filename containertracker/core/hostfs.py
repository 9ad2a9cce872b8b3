"""Host paths a job names: resolved once, checked, and then used without following symlinks.

A job's template names host files (stdin, stdout, stderr, stage-in sources, stage-out
destinations), and the job itself may change the host directories they lie in (a stage-out
copy can create symlinks there). So:

* :func:`resolve` turns a path into the absolute, symlink-free path the kernel would reach
  now (symlinks and ``..`` resolved in the kernel's order, as :func:`os.path.realpath` does);
  this is the path that is checked, stored in the job's plan and used from then on;
* :func:`check_within` refuses a resolved path outside the allowed roots;
* every later use (:func:`create_file`, :func:`write_file`, :func:`open_for_reading`,
  :func:`extract`) walks the resolved path from ``/`` one component at a time with
  ``O_NOFOLLOW``, relative to the directory opened before: a symlink met anywhere (planted
  between the check and the use, say) makes the use fail, it is never followed. What is
  written is therefore written exactly where the check said.

Only the exact path ``/dev/null`` is taken literally (always allowed, nothing is kept in it).
Every other path, ``/dev/...`` included, is resolved like any path. Without roots (the
library's default) a device stays usable: ``/dev/stdout`` resolves to the terminal, file or
(for a pipe, socket or deleted file, which have no path) the ``/proc/<pid>/fd/<n>`` link of the
submitting process it reaches now; a character device is written and read as it is (never
truncated), a ``/proc/<pid>/fd/<n>`` link is the one thing ever followed, and only as the last
component of a walk that reached ``/proc/<pid>/fd`` without following anything. With roots,
any such device path (a character or block device, a fifo or socket, an fd link) is refused.
Linux only (``O_NOFOLLOW``, ``dir_fd``).
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import PurePosixPath
from typing import BinaryIO

from containertracker.errors import DeniedByDrmsError, InvalidArgumentError

__all__ = [
    "CHUNK_SIZE",
    "check_within",
    "create_file",
    "extract",
    "normalize_roots",
    "open_for_reading",
    "remove_created_file",
    "resolve",
    "verify_unchanged",
    "write_file",
]

CHUNK_SIZE = 1 << 16
"""Bytes copied at a time: what a job writes never sits in memory whole."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


_FD_DIR = re.compile(r"/proc/[0-9]+(?:/task/[0-9]+)?/fd")
"""A process's descriptor directory: its entries are the kernel's links to open files."""


def _is_fd_link(parent: str) -> bool:
    return _FD_DIR.fullmatch(parent) is not None


def resolve(path: str, cwd: str) -> str:
    """The absolute, symlink-free form of ``path`` (relative paths against ``cwd``).

    Existing components are resolved as the kernel would (a symlink first, then ``..``
    applied to its target); a missing tail is kept as written, minus ``.`` and ``..``.
    Only ``/dev/null`` comes back unchanged. A name that reaches an open file without a path
    of its own (``/dev/stdout`` when it is a pipe, a socket or a deleted file) resolves to the
    ``/proc/<pid>/fd/<n>`` link it goes through (see the module docstring).

    Raises:
        InvalidArgumentError: the name reaches a file that neither a path nor a
            ``/proc/<pid>/fd/<n>`` link names.
    """
    if path == os.devnull:
        return path
    named = os.path.join(cwd, path)
    resolved = os.path.realpath(named)
    if _same_file(named, resolved):
        return resolved
    link = _fd_link(named)
    if link is None:
        raise InvalidArgumentError(
            f"{path!r} reaches a file that has no path of its own ({resolved!r})"
        )
    return link


def _same_file(named: str, resolved: str) -> bool:
    """Whether ``resolved`` is the file the kernel reaches through ``named`` (or neither
    exists); not so when ``named`` goes through a /proc fd link to a pipe or deleted file."""
    try:
        reached = os.stat(named)
    except OSError:
        return True  # a missing file: nothing to tell apart
    try:
        found = os.stat(resolved)
    except OSError:
        return False
    return (reached.st_dev, reached.st_ino) == (found.st_dev, found.st_ino)


def _fd_link(named: str) -> str | None:
    """The ``/proc/<pid>/fd/<n>`` link that ``named`` reaches, following symlinks one at a
    time (their directories resolved); None if it reaches none."""
    current = named
    for _ in range(40):  # the kernel's limit of symlinks followed is 40
        parent = os.path.realpath(os.path.dirname(current))
        link = os.path.join(parent, os.path.basename(current))
        if _is_fd_link(parent):
            return link
        try:
            target = os.readlink(link)
        except OSError:
            return None
        current = os.path.join(parent, target)
    return None


def normalize_roots(roots: Iterable[str | os.PathLike[str]] | None) -> tuple[str, ...] | None:
    """Roots resolved once (the operator's own symlinks in them are fine); None stays None."""
    if roots is None:
        return None
    return tuple(os.path.realpath(os.fspath(root)) for root in roots)


def check_within(path: str, roots: Sequence[str] | None, what: str) -> None:
    """Refuse a resolved ``path`` that is not below one of ``roots`` (None: any path), or
    that names a device, fifo, socket or ``/proc/<pid>/fd`` link when there are roots.

    ``/dev/null`` is always allowed: nothing is read from or kept in it.

    Raises:
        DeniedByDrmsError: the path lies outside every root (or there are no roots), or it
            names a device.
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
    if _is_fd_link(os.path.dirname(path)) or _is_special(path):
        raise DeniedByDrmsError(
            f"{what} {path!r} is a device, fifo or socket; with host_path_roots set only "
            "files and directories are allowed (and /dev/null)"
        )


def _is_special(path: str) -> bool:
    """Whether the resolved ``path`` exists as neither a regular file nor a directory."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    # (A symlink is no device: every use refuses it, with a message saying so.)
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def verify_unchanged(path: str, what: str) -> None:
    """Refuse a resolved path that no longer resolves to itself (a symlink was put in).

    Raises:
        InvalidArgumentError: it now resolves elsewhere.
    """
    if path != os.devnull and os.path.realpath(path) != path:
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


def _open_regular(dir_fd: int, name: str, mode: int, path: str, *, devices: bool = False) -> int:
    """Create or open ``name`` in ``dir_fd`` for writing, truncated, without following a
    symlink; only a regular file with no other hard link is accepted (never a fifo, never a
    second name of some other file). With ``devices`` (a job's output files, see the module
    docstring), a character device or the ``/proc/<pid>/fd`` link ``path`` may name is
    opened as it is, not truncated."""
    fd_link = devices and _is_fd_link(os.path.dirname(path))
    flags = _WRITE_FLAGS & ~(os.O_NOFOLLOW | os.O_CREAT) if fd_link else _WRITE_FLAGS
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise _refusal(exc, path) from exc
    try:
        info = os.fstat(fd)
        if fd_link or (devices and stat.S_ISCHR(info.st_mode)):
            pass  # a device or an open file of a process: written as it is
        elif not stat.S_ISREG(info.st_mode):
            raise InvalidArgumentError(f"{path} is not a regular file")
        elif info.st_nlink > 1:
            raise InvalidArgumentError(f"{path} has other hard links (not written through)")
        else:
            os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_file(path: str, what: str = "output file") -> bool:
    """Create (or truncate) the resolved file ``path``, parent directories as they are;
    whether it was created (it did not exist), so that a submission rolled back can remove
    what it created (:func:`remove_created_file`) and nothing else.

    Raises:
        InvalidArgumentError: a symlink on the way, a missing directory, not a regular file
            (or one with other hard links), or the file system refused.
    """
    if path != os.devnull and not _is_fd_link(os.path.dirname(path)):
        with _explained(f"write {what}", path), _parent_dir(path, create=False) as (dir_fd, name):
            try:
                # O_EXCL: created by this call, never an existing name (nor a symlink).
                fd = os.open(name, _WRITE_FLAGS | os.O_EXCL, 0o666, dir_fd=dir_fd)
            except FileExistsError:
                pass  # exists: checked and truncated below, as any output file
            except OSError as exc:
                raise _refusal(exc, path) from exc
            else:
                os.close(fd)
                return True
    with open_for_writing(path, what):
        pass
    return False


def remove_created_file(path: str) -> None:
    """Remove the file ``path`` that :func:`create_file` created, if it is still an empty
    regular file (a rolled-back submission's: nobody wrote to it); never follows a symlink.

    Raises:
        InvalidArgumentError: a symlink or missing directory on the way.
        OSError: the file system refused.
    """
    with _parent_dir(path, create=False) as (dir_fd, name):
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(name, dir_fd=dir_fd)


@contextmanager
def open_for_writing(path: str, what: str = "output file") -> Iterator[BinaryIO]:
    """The resolved file ``path`` opened for writing, truncated (see :func:`create_file`).

    ``/dev/null`` is opened as it is; a character device or ``/proc/<pid>/fd`` link (which
    :func:`check_within` refuses when there are roots) is reached like any path and not
    truncated.
    """
    with _explained(f"write {what}", path):
        if path == os.devnull:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        else:
            with _parent_dir(path, create=False) as (dir_fd, name):
                fd = _open_regular(dir_fd, name, 0o666, path, devices=True)
    with open(fd, "wb", buffering=0, closefd=True) as f:
        yield f


def write_file(path: str, chunks: Iterable[bytes], what: str = "output file") -> None:
    """Write ``chunks`` to the resolved file ``path`` as they come (see :func:`create_file`)."""
    with open_for_writing(path, what) as f:
        for chunk in chunks:
            f.write(chunk)


def open_for_reading(path: str, what: str = "input file") -> BinaryIO:
    """The resolved regular file ``path``, opened for reading without following symlinks;
    the caller closes it (and reads it in pieces: it may be of any size).

    ``/dev/null``, a character device or a ``/proc/<pid>/fd`` link (see the module
    docstring) are opened as they are.

    Raises:
        InvalidArgumentError: a symlink on the way, missing, or not a regular file.
    """
    with _explained(f"read {what}", path):
        if path == os.devnull:
            return open(path, "rb")  # (the caller closes it)
        fd_link = _is_fd_link(os.path.dirname(path))
        flags = _READ_FLAGS & ~os.O_NOFOLLOW if fd_link else _READ_FLAGS
        with _parent_dir(path, create=False) as (dir_fd, name):
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            except OSError as exc:
                raise _refusal(exc, path) from exc
        try:
            mode = os.fstat(fd).st_mode
            if not (fd_link or stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
                raise InvalidArgumentError(f"{path} is not a regular file")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return open(fd, "rb", closefd=True)  # (the caller closes it)


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
    to its parent. Symlink members are created as symlinks (never followed here) if their
    target is relative without ``..`` and nothing is in their place yet (see
    :func:`_make_symlink`);
    hard-link members become copies of the file they link to; setuid, setgid and sticky bits
    and group/other write are dropped; ownership is not copied.

    Raises:
        InvalidArgumentError: an empty archive, a source that is neither file nor directory,
            a member with an absolute or ``..`` name, a device or fifo member, a symlink
            member with an absolute or ``..`` target or in place of an existing file, a
            symlink or non-directory met on the way (what was written before stays).
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
            _make_symlink(parent, name, member.linkname, path, source)
        elif member.islnk():
            _copy_hard_link(member, prefix, source, destination, dest_fd, parent, name, path)
        else:
            raise InvalidArgumentError(
                f"stage-out of {source}: {member.name!r} is a device or fifo; only files, "
                "directories and symlinks are copied"
            )
    finally:
        os.close(parent)


def _make_symlink(dir_fd: int, name: str, target: str, path: str, source: str) -> None:
    """Create the symlink ``name`` -> ``target`` in ``dir_fd``, where nothing is yet.

    Only a relative target without ``..`` is accepted: such a link resolves at or below its
    own directory (its target's own symlinks being such links too, by induction), so below
    the stage-out destination. Any other link could lead a later use of a path below the
    destination (an engine re-resolving a bind mount's source at a container's restart,
    say) out of the allowed directories. An existing file or symlink is never replaced by a
    symlink: a path checked as a file must not become a link.
    """
    parts = target.split("/")
    if not target or target.startswith("/") or ".." in parts:
        raise InvalidArgumentError(
            f"stage-out of {source}: the symlink {path} -> {target} could lead outside its "
            "directory (only relative symlinks without '..' are copied); refusing it"
        )
    try:
        os.symlink(target, name, dir_fd=dir_fd)
    except FileExistsError:
        raise InvalidArgumentError(
            f"stage-out of {source}: {path} exists already; not replacing it by a symlink"
        ) from None
    except OSError as exc:
        raise _refusal(exc, path) from exc


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
