"""The Landlock launcher: restricts itself, then starts the sandboxed command and stays as its reaper.

Landlock restricts the calling process and everything it starts later, so the ruleset must be
applied here, in the child, before the command runs. Run as ``python -I <this file> <policy.json>``
(stdlib only, nothing imported from the project): the policy file, written by
``core.sandbox.landlock`` into the sandbox's private temp dir, holds the rules, the command, its
working directory and its whole environment (never put in argv, where any process could read it),
and is deleted before the restriction.

Order: read the policy; drop every capability (a root host would otherwise keep CAP_SYS_MODULE,
mknod, raw sockets...); ``no_new_privs``; create the ruleset with only the rights this kernel
knows; add one rule per allowed path; restrict self; then fork the command and wait. The launcher
is a child subreaper: an orphan the command leaves behind becomes its child, so when the command
exits every remaining process is killed (as bwrap's pid namespace does) and ``kill_tree`` finds
all of them as descendants.

The syscalls are called through ctypes: the ``landlock`` package on PyPI (1.0.0.dev5) knows only
filesystem rights, not the network (ABI 4) or scoping (ABI 6) fields this sandbox needs.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import sys
from typing import Any

# The syscall numbers are the same on every architecture (added after the tables were unified).
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
PR_SET_CHILD_SUBREAPER, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 36, 47, 4

# Filesystem rights (uapi/linux/landlock.h) and the ABI that introduced each.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
FS_MAKE_SYM, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
FS_BY_ABI = {1: (1 << 13) - 1, 2: FS_REFER, 3: FS_TRUNCATE, 5: FS_IOCTL_DEV}
# Only these apply to a file (a rule on a file with directory rights is EINVAL).
FS_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the uapi header
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI (>= 1); OSError (ENOSYS: not built in, EOPNOTSUPP: disabled at boot)."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    return _check(libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
                               ctypes.c_uint32(CREATE_RULESET_VERSION)), "landlock_create_ruleset")


def fs_rights(abi: int) -> int:
    """Every filesystem right this ABI knows (a right it does not know makes the ruleset EINVAL)."""
    rights = 0
    for version, bits in FS_BY_ABI.items():
        if abi >= version:
            rights |= bits
    return rights


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets: after exec even uid 0
    has no capability. Without CAP_SETPCAP (an unprivileged host) there is nothing to drop."""
    libc.prctl.restype = ctypes.c_int
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) == 0:
        cap += 1
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable} words, all zero
    _check(libc.capset(header, data), "capset")


def restrict(policy: dict[str, Any]) -> None:
    """Apply ``policy`` to this process (and so to all it starts). Raises OSError on any failure:
    the command never runs unrestricted."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = int(policy["abi"])
    attr = RulesetAttr(int(policy["handled_fs"]), int(policy["handled_net"]), int(policy["scoped"]))
    size = ctypes.sizeof(RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _check(libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                                  ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for path, access in policy["rules"]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # /lib32 and the like: absent here, nothing to allow
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= FS_FILE_RIGHTS
                rule = PathBeneathAttr(access & int(policy["handled_fs"]), fd)
                _check(libc.syscall(ctypes.c_long(SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH),
                                    ctypes.byref(rule), ctypes.c_uint32(0)), f"landlock_add_rule({path})")
            finally:
                os.close(fd)
        _drop_capabilities(libc)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(libc.syscall(ctypes.c_long(SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _children() -> list[int]:
    """This process's children (orphans of the command included, since it is their subreaper)."""
    kids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as fh:
                kids += [int(p) for p in fh.read().split()]
        except OSError:
            pass
    return kids


def _kill_all() -> None:
    """SIGKILL every child until none is left (a killed child's orphans come to us in turn)."""
    while True:
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def supervise(command: list[str], env: dict[str, str]) -> int:
    """Fork the command, forward termination signals to it, reap everything; its exit status."""
    libc = _libc()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    host = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != host:  # the host died before the line above: nothing should run
        return 1
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)  # none may arrive before the handlers know the pid
    pid = os.fork()
    if pid == 0:
        try:
            for ignored in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; exec would keep that
                signal.signal(ignored, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)  # exec keeps the mask: the command needs them
            os.execvpe(command[0], command, env)
        except OSError as exc:
            os.write(2, f"sandbox: cannot run {command[0]!r}: {exc.strerror}\n".encode())
        os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        if os.getppid() != host:  # the host is gone: leave nothing behind
            _kill_all()
            os._exit(128 + signum)
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for each in forwarded:
        signal.signal(each, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if done == pid:
            break
    _kill_all()
    if os.WIFSIGNALED(status):  # die the same way, so the host sees -N as without a launcher
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        os.write(2, b"usage: _landlock_exec.py POLICY.json\n")
        return 2
    with open(argv[1]) as fh:
        policy = json.load(fh)
    os.unlink(argv[1])
    try:
        os.chdir(policy["cwd"])
    except OSError as exc:
        os.write(2, f"sandbox: cannot enter {policy['cwd']}: {exc.strerror}\n".encode())
        return 126
    try:
        restrict(policy)
    except OSError as exc:
        os.write(2, f"sandbox: landlock refused ({exc}); nothing was run\n".encode())
        return 125
    return supervise(list(policy["command"]), dict(policy["env"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
