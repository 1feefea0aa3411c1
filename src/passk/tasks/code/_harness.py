"""The program that runs inside each sandbox process (standard library only).

It is not imported by passk: :mod:`passk.tasks.code.sandbox` reads this file's text and
runs it with ``python -I -S -B -c <text>`` in a fresh interpreter. The parent writes one
marshal payload to its stdin (candidate code, test plan, limits, report fd, nonce, uid); the
harness then

1. isolates itself while still trusted (network and mount namespaces, read-only file
   system with private tmpfs on the world-writable directories, resource limits, a
   private uid, no_new_privs, socket module disabled),
2. runs the candidate code, then each test, and writes one JSON line per test to the
   report fd: ``{"t": i, "v": [values]}`` for lifted tests (the parent judges the values),
   ``{"t": i, "ok": nonce}`` for tests that can only be run in here, ``{"t": i, "e": text}``
   for a failure.

Nothing written here is trusted by the parent beyond what the docs/code_sandbox.md threat
model says: once the candidate runs, it controls this whole interpreter.
"""

import marshal
import os
import sys
from _json import encode_basestring_ascii as _quote  # `json` itself would import `re`: slow


def _main():
    payload = marshal.loads(sys.stdin.buffer.read())  # from the trusted parent
    fd = payload["fd"]
    nonce = payload["nonce"]
    write = os.write

    def emit(obj):
        data = (_dumps(obj) + "\n").encode()
        while data:
            data = data[write(fd, data) :]

    emit({"iso": _isolate(payload)})
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    import builtins

    env = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        exec(compile(payload["code"], "<candidate>", "exec"), env)
        entry = payload["entrypoint"]
        if not callable(env.get(entry)):
            raise NameError(f"the code does not define a function {entry!r}")
    except BaseException as e:  # SystemExit and KeyboardInterrupt included: never trust them
        emit({"load": _describe(e)})
        return
    for test in payload["tests"]:
        i = test["i"]
        try:
            if "calls" in test:
                values = [_encode(eval(compile(c, "<test>", "eval"), env)) for c in test["calls"]]
                emit({"t": i, "v": values})
            else:
                exec(compile(test["src"], "<test>", "exec"), env)
                emit({"t": i, "ok": nonce})
        except BaseException as e:
            emit({"t": i, "e": _describe(e)})


def _dumps(v):
    """JSON text of None/bool/int/str and (nested) lists and str-keyed dicts."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int:
        return int.__repr__(v)
    if type(v) is str:
        return _quote(v)
    if type(v) is list:
        return "[" + ",".join([_dumps(x) for x in v]) + "]"
    return "{" + ",".join([_quote(k) + ":" + _dumps(x) for k, x in v.items()]) + "}"


def _describe(e):
    try:
        name = type(e).__name__
        text = str(e)
    except BaseException:
        return "exception"
    return (f"{name}: {text}" if text else name)[:300]


def _encode(v, depth=0):
    """Plain data -> JSON-safe tagged form (decoded by passk.tasks.code.judge)."""
    if depth > 100:
        raise ValueError("returned value is nested too deeply")
    if v is None or v is True or v is False:
        return v
    d = depth + 1
    if isinstance(v, int):
        return ["i", format(int(v), "x")]
    if isinstance(v, float):
        return ["f", float.hex(float(v))]
    if isinstance(v, complex):
        return ["c", float.hex(v.real), float.hex(v.imag)]
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, bytes):
        return ["b", bytes(v).hex()]
    if isinstance(v, bytearray):
        return ["B", bytes(v).hex()]
    if isinstance(v, list):
        return ["l", [_encode(x, d) for x in v]]
    if isinstance(v, tuple):
        return ["t", [_encode(x, d) for x in v]]
    if isinstance(v, frozenset):
        return ["F", [_encode(x, d) for x in v]]
    if isinstance(v, set):
        return ["S", [_encode(x, d) for x in v]]
    if isinstance(v, dict):
        return ["d", [[_encode(k, d), _encode(x, d)] for k, x in v.items()]]
    raise TypeError(f"returned a {type(v).__name__}, which cannot be checked (plain data only)")


# Linux constants (include/uapi/linux/sched.h, mount.h, prctl.h).
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV = 1, 2, 4
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


def _isolate(p):
    """Apply every isolation layer this machine allows; return what was applied."""
    done = []
    lim = p["limits"]
    uid = p["uid"]
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except BaseException:
        libc = None
    if libc is not None and uid is not None and os.geteuid() == 0:
        if libc.unshare(_CLONE_NEWNET) == 0:
            done.append("netns")
        if libc.unshare(_CLONE_NEWNS) == 0 and _private_root(libc, p):
            done.append("chroot")
    elif libc is not None and libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        done.append("netns")
    import resource as r

    limits = [
        (r.RLIMIT_CORE, 0),
        (r.RLIMIT_CPU, lim["cpu_s"]),
        (r.RLIMIT_AS, lim["memory_bytes"]),
        (r.RLIMIT_FSIZE, lim["file_bytes"]),
        (r.RLIMIT_NOFILE, lim["open_files"]),
    ]
    if uid is not None:
        limits.append((r.RLIMIT_NPROC, lim["processes"]))
    for res, value in limits:
        hard = value + 1 if res == r.RLIMIT_CPU else value
        try:
            r.setrlimit(res, (value, hard))
        except (ValueError, OSError):
            continue
    done.append("rlimits")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        done.append("uid")
    if libc is not None:
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
            done.append("no_new_privs")
        libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    # Defence in depth only: the candidate can undo this; the network namespace cannot be.
    sys.modules["socket"] = None
    sys.modules["_socket"] = None
    return done


def _private_root(libc, p):
    """Chroot into a fresh tmpfs holding only /work, /tmp, a few /dev nodes and the stdlib.

    The mount namespace is private, so none of these mounts is visible outside, and all of
    it disappears with the last sandbox process. The host file system (datasets, the
    trainer's files, /tmp) is simply not there.
    """

    def mount(src, target, fstype, flags, data=None):
        enc = [x.encode() if isinstance(x, str) else x for x in (src, target, fstype, data)]
        return libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) == 0

    uid = p["uid"]
    root = p["workdir"]
    size = f"size={p['limits']['tmpfs_bytes']},mode=755"
    if not mount("none", "/", None, _MS_REC | _MS_PRIVATE):
        return False
    if not mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, size):
        return False
    for sub, mode in (("tmp", 0o1777), ("work", 0o700), ("dev", 0o755), ("lib", 0o755)):
        os.mkdir(f"{root}/{sub}")
        os.chmod(f"{root}/{sub}", mode)
    os.chown(f"{root}/work", uid, uid)
    for name in ("null", "zero", "random", "urandom"):
        target = f"{root}/dev/{name}"
        open(target, "w").close()
        mount(f"/dev/{name}", target, None, _MS_BIND)
    # The standard library may sit where the sandbox uid cannot enter (e.g. under /root):
    # bind it read-only into the new root so that `import` keeps working after the drop.
    paths = []
    for k, path in enumerate(sys.path):
        target = f"{root}/lib/{k}"
        if os.path.isdir(path):
            os.mkdir(target)
            if mount(path, target, None, _MS_BIND | _MS_REC):
                mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID)
                paths.append(f"/lib/{k}")
    os.chroot(root)
    os.chdir("/work")
    sys.path[:] = paths
    return True


if __name__ == "__main__":
    _main()
