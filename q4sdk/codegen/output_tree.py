"""Writing a generated output folder all or nothing.

``write_files`` builds the complete new folder beside the target (a hidden ``.<name>.new-<hex>``
sibling: the generated files plus every entry of an existing target that the generation does not
replace, hard-linked) and then swaps it in with one ``renameat2(RENAME_EXCHANGE)`` (Linux), so
the target is at every instant either the old complete tree or the new complete tree; the old
tree is removed only after the swap. Where the exchange is not available (not Linux, or a file
system without it) it falls back to two renames (target -> ``.<name>.old-<hex>``, new -> target),
putting the old tree back if the second fails; only a kill between those two renames leaves the
target missing, with the complete old tree at ``.<name>.old-<hex>``. One exception: when the
target is the current directory or holds it (``generate -o .``), swapping the folder would leave
the user's shell in the removed old tree, so the generated entries are swapped in one at a time
instead (each atomically, all put back on an error; a kill between two can leave a mix). A process killed mid-way leaves at most a hidden sibling, never a mixed target.
(Files are not fsynced: the promise covers a killed process or a failed write, not a power
cut.)

Folders are created with mode 0777 and files with 0666, both under the user's umask (0755 /
0644 with the usual umask); a replaced target keeps its own mode. Every OS fault is a one-line
:class:`Q4Error` naming the path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
from pathlib import Path

from q4sdk.errors import Q4Error

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _cannot(path: Path, e: OSError, what: str = "cannot write") -> Q4Error:
    return Q4Error(f"{path}: {what} ({e.strerror or e})")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the directory entries ``a`` and ``b``; False when the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _link_tree(src: Path, dst: Path) -> None:
    """Recreate ``src`` at ``dst``: folders anew (same mode), files as hard links (copies where a
    link is impossible), symbolic links as links."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        os.mkdir(dst)
        for child in sorted(os.listdir(src)):
            _link_tree(src / child, dst / child)
        shutil.copymode(src, dst)
    else:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _write_tree(files: dict[str, str | bytes], root: Path) -> None:
    for rel, content in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)  # mode 0777 under the umask
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        with open(path, "wb") as f:  # 0666 under the umask
            f.write(data)


def _swap_in(new: Path, target: Path) -> Path:
    """Put ``new`` at ``target`` (which exists); return where the old tree now lies."""
    if _exchange(new, target):
        return new
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    return old


def _put(src: Path, dst: Path) -> bool:
    """Move ``src`` to ``dst``; if ``dst`` existed, swap them (the old entry ends at ``src``) and
    return True. Calling it again on the same pair undoes a swap."""
    if not os.path.lexists(dst):
        os.rename(src, dst)
        return False
    if not _exchange(src, dst):
        aside = src.with_name(f".{src.name}.aside")
        os.rename(dst, aside)
        try:
            os.rename(src, dst)
        except BaseException:
            os.rename(aside, dst)
            raise
        os.rename(aside, src)
    return True


def _swap_entries(new: Path, target: Path, entries: list[str]) -> None:
    """Swap the generated ``entries`` of ``new`` into ``target`` one at a time (each swap atomic),
    putting every one back if one fails. Used only when ``target`` holds the current directory,
    which a whole-folder swap would leave pointing at the removed old tree."""
    done: list[tuple[str, bool]] = []
    try:
        for entry in entries:
            done.append((entry, _put(new / entry, target / entry)))
    except BaseException:
        for entry, swapped in reversed(done):
            if swapped:
                _put(new / entry, target / entry)
            else:
                os.rename(target / entry, new / entry)
        raise


def _holds_cwd(target: Path) -> bool:
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        return False
    real = os.path.realpath(target)
    return os.path.commonpath([cwd, real]) == real


def write_files(files: dict[str, str | bytes], out_dir, overwrite: bool) -> None:
    """Write ``{relative path: text or bytes}`` (text as UTF-8, newlines as given) as the folder ``out_dir`` (created, parents too, if needed),
    all or nothing. Entries of an existing ``out_dir`` that ``files`` does not name are kept;
    Q4Error if ``files`` would replace one and not ``overwrite``."""
    out_dir = Path(out_dir)
    target = out_dir.resolve() if out_dir.is_symlink() else Path(os.path.abspath(out_dir))
    top_level = sorted({rel.split("/")[0] for rel in files})
    exists = os.path.lexists(target)
    if exists and not target.is_dir():
        raise Q4Error(f"{out_dir}: exists and is not a directory")
    if exists and not overwrite:
        for entry in top_level:
            if os.path.lexists(out_dir / entry):
                raise Q4Error(f"generate: '{out_dir / entry}' already exists (use --force to replace it)")
    if exists and not os.access(target, os.W_OK | os.X_OK):
        raise Q4Error(f"{out_dir}: cannot write (permission denied)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot(target.parent, e, "cannot create the directory") from None
    new = target.with_name(f".{target.name}.new-{secrets.token_hex(4)}")
    old = None
    try:
        try:
            os.mkdir(new)
        except OSError as e:
            raise _cannot(out_dir, e) from None
        in_place = exists and _holds_cwd(target)
        if exists and not in_place:
            shutil.copymode(target, new)
            for entry in sorted(os.listdir(target)):
                if entry not in top_level:
                    _link_tree(target / entry, new / entry)
        _write_tree(files, new)
        if in_place:
            _swap_entries(new, target, top_level)
        elif exists:
            old = _swap_in(new, target)
        else:
            os.rename(new, target)
    except OSError as e:
        raise _cannot(out_dir, e) from None
    finally:
        for leftover in (new, old):
            if leftover is not None and os.path.lexists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
