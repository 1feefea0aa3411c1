"""One live writer per run directory: ``writer.lock`` names the holder, a dead holder's
lock is taken over, and SIGTERM stops ``passk train`` as Ctrl-C does (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_overrides
from passk.train.run_dir import LOCK_FILE, DirectoryBusy, DirectoryLock, RunDir

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")

HOLD = (
    "import sys, time; from passk.train.run_dir import DirectoryLock; "
    "lock = DirectoryLock(sys.argv[1], 'holder script'); lock.acquire(); "
    "print('held', flush=True); time.sleep(120)"
)


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def _holder(path: Path) -> subprocess.Popen:
    """Another process holding ``path``'s lock (until killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _passk(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "passk.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def test_a_live_holder_is_named_and_a_dead_ones_lock_is_taken_over(tmp_path):
    run = RunDir(tmp_path / "run")
    holder = _holder(run.path)
    try:
        assert run.writer()["pid"] == holder.pid
        with pytest.raises(DirectoryBusy, match=rf"pid {holder.pid} \(holder script, since "):
            DirectoryLock(run.path, "second").acquire()
    finally:
        holder.kill()
        holder.wait()
    # the killed holder left its file behind: stale, taken over by the next writer
    assert json.loads(run.lock_file.read_text())["pid"] == holder.pid
    assert run.writer() is None and run.foreign_files() == []
    with run.lock("next") as lock:
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()
        assert lock.file == run.lock_file
    assert not run.lock_file.exists()  # released on exit


def test_a_lock_on_a_new_directory_leaves_nothing_behind(tmp_path):
    with DirectoryLock(tmp_path / "new" / "run", "x"):
        assert (tmp_path / "new" / "run" / LOCK_FILE).is_file()
    assert not (tmp_path / "new" / "run").exists()  # created by the lock, empty again


def test_passk_train_refuses_a_directory_another_live_process_writes(
    tiny_checkpoint, tmp_path, subprocess_env
):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        sets = [a for o in tiny_overrides(tiny_checkpoint) for a in ("--set", o)]
        for extra in ([], ["--resume"]):
            res = _passk(
                ["train", "--out", str(out), "--steps", "1", *sets, *extra], subprocess_env
            )
            assert res.returncode == 2, res.stderr[-2000:]
            line = res.stderr.strip().splitlines()[-1]
            assert f"is being written by another process: pid {holder.pid}" in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_sigterm_stops_passk_train_like_ctrl_c_and_a_second_writer_is_refused(
    tiny_checkpoint, tmp_path, subprocess_env
):
    """SIGTERM: the last finished step is saved, exit 130, the lock is released; meanwhile
    a second ``passk train --resume`` on the directory is refused, naming the first."""
    out = tmp_path / "run"
    sets = [a for o in tiny_overrides(tiny_checkpoint) for a in ("--set", o)]
    args = ["train", "--out", str(out), "--steps", "500", *sets, "--set", "eval.problems=0"]
    first = subprocess.Popen(
        [sys.executable, "-m", "passk.cli", *args],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not RunDir(out).last_train_step() and time.monotonic() < deadline:
            assert first.poll() is None, first.stdout.read() if first.stdout else ""
            time.sleep(0.2)
        assert RunDir(out).writer()["pid"] == first.pid
        second = _passk(["train", "--out", str(out), "--resume", "--steps", "500"], subprocess_env)
        assert second.returncode == 2 and f"pid {first.pid} (passk train" in second.stderr
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130, output[-2000:]
    assert "interrupted; resume with --resume" in output
    run = RunDir(out)
    assert not run.lock_file.exists() and run.writer() is None
    saved = run.last_train_step()
    assert saved >= 1 and (run.checkpoints / f"step_{saved:06d}").is_dir()
