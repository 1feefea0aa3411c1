"""The layout of a training run directory, in one place.

Everything that reads or writes a run directory (the trainer, checkpoints, ``passk plot``,
``passk sweep``) asks :class:`RunDir` where a file lives and what a state means::

    RUN/config.yaml              the resolved config (what --resume reloads)
    RUN/metrics.jsonl            one JSON object per step and per evaluation ("kind")
    RUN/evals/step_000016.json   held-out evaluation reports, one per evaluated step
    RUN/checkpoints/             step_XXXXXX/ directories and the ``latest`` pointer
    RUN/done.json                written once the run reached its last step and its
                                 final evaluation: what marks a finished run
    RUN/training.png             training curves (``passk plot run``)
    RUN/tensorboard/, RUN/wandb/ optional mirrors of the metrics
    RUN/writer.lock              held by the one process writing the run (its pid inside)

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> run.holds_run(), run.last_train_step(), run.eval_path(16).name
(False, 0, 'step_000016.json')
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from passk.train.checkpoint import CHECKPOINTS, write_text_atomic

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
EVALS_DIR = "evals"
DONE_FILE = "done.json"
TRAINING_PLOT = "training.png"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
LOCK_FILE = "writer.lock"
DONE_FORMAT = 1

_FILES = (CONFIG_FILE, METRICS_FILE, DONE_FILE, TRAINING_PLOT, LOCK_FILE)
_DIRS = (EVALS_DIR, CHECKPOINTS, TENSORBOARD_DIR, WANDB_DIR)
_EVAL_NAME = re.compile(r"^step_(\d{6,})\.json$")
# leftovers of an atomic write cut by a crash: ".metrics.jsonl.tmp-123", ".done.json.x1y2"
_TEMP_NAME = re.compile(r"^\.(" + "|".join(re.escape(n) for n in _FILES) + r")\.")
SAMPLES_FILE = "samples.jsonl"  # sampled responses of each step (log.samples)
_FILES = (*_FILES, SAMPLES_FILE)


class RunDir:
    """A training run directory: where each file lives, and what the files say."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # --- paths ------------------------------------------------------------------------------

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def evals_dir(self) -> Path:
        return self.path / EVALS_DIR

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def done(self) -> Path:
        return self.path / DONE_FILE

    @property
    def training_plot(self) -> Path:
        return self.path / TRAINING_PLOT

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def wandb(self) -> Path:
        return self.path / WANDB_DIR

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    def lock(self, command: str) -> DirectoryLock:
        """The lock a process holds while it writes this run (see :class:`DirectoryLock`)."""
        return DirectoryLock(self.path, command)

    def writer(self) -> dict[str, Any] | None:
        """The live process writing this run (``pid``, ``command``, ``started``), or None."""
        return lock_holder(self.path)

    def eval_path(self, step: int) -> Path:
        """The evaluation report of ``step``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self.evals_dir / f"step_{step:06d}.json"

    # --- what the directory holds -------------------------------------------------------------

    def check_start(self, resume: bool) -> None:
        """The cheap checks before a run starts here (a writable directory holding nothing
        foreign, and no run unless resuming), so that they fail in one line before any
        model loads."""
        check_output_dir(self.path)
        foreign = self.foreign_files()
        if foreign:
            raise ValueError(
                f"{self.path} holds files that are not part of a passk run: "
                f"{', '.join(foreign)}; choose another --out"
            )
        if not resume and self.holds_run():
            raise ValueError(
                f"{self.path} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )

    def holds_run(self) -> bool:
        """Whether a run was started here (metrics or checkpoints exist)."""
        return self.metrics.exists() or self.checkpoints.exists()

    def foreign_files(self) -> list[str]:
        """Entries that are not part of a passk run, relative to the directory, sorted.

        Unknown names, a known name of the wrong kind (a file where a directory belongs),
        and a ``config.yaml`` that is not a passk config while no run was started here
        (a user's own file that training would overwrite).
        """
        if not self.path.is_dir():
            return []
        foreign = []
        for entry in sorted(self.path.iterdir(), key=lambda p: p.name):
            name = entry.name
            if name in _FILES:
                ok = entry.is_file()
            elif name in _DIRS:
                ok = entry.is_dir()
            else:
                ok = bool(_TEMP_NAME.match(name)) and entry.is_file()
            if not ok:
                foreign.append(name + ("/" if entry.is_dir() else ""))
        if self.config.is_file() and not self.holds_run() and not _is_passk_config(self.config):
            foreign.append(CONFIG_FILE)
        return sorted(foreign)

    def read_config(self) -> dict[str, Any] | None:
        """The saved config as a plain mapping (None when there is none)."""
        if not self.config.is_file():
            return None
        tree = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        if not isinstance(tree, dict):
            raise ValueError(f"{self.config} does not hold a mapping")
        return tree

    def write_config(self, text: str) -> None:
        """Write the resolved config (YAML text) atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config, text)

    # --- metrics ------------------------------------------------------------------------------

    def read_metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` in file order; ``kind`` keeps one kind only.

        A record without ``"kind"`` is a training step (``"train"``). A last line that
        does not parse is skipped (cut by a crash, or a writer mid-line); a bad line
        anywhere else, or a record without a ``step``, is a ValueError naming its line.
        No file: no records.
        """
        if not self.metrics.is_file():
            return []
        lines = self.metrics.read_text(encoding="utf-8").splitlines()
        numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
        rows = []
        for pos, (lineno, line) in enumerate(numbered):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                if pos == len(numbered) - 1:
                    break
                raise ValueError(f"{self.metrics}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or "step" not in row:
                raise ValueError(f"{self.metrics}:{lineno}: expected a JSON object with a 'step'")
            if kind is None or row.get("kind", "train") == kind:
                rows.append(row)
        return rows

    def truncate_metrics(self, last_step: int) -> None:
        """Drop records written after ``last_step`` (a resumed run writes them again).

        The file is rewritten atomically; a line cut by a crash goes with them.
        """
        if not self.metrics.exists():
            return
        keep = [json.dumps(r) + "\n" for r in self.read_metrics() if r["step"] <= last_step]
        write_text_atomic(self.metrics, "".join(keep))

    def last_train_step(self) -> int:
        """The last training step logged (0 before the first)."""
        return max((int(r["step"]) for r in self.read_metrics("train")), default=0)

    # --- evaluations --------------------------------------------------------------------------

    def eval_steps(self) -> list[int]:
        """Steps that have an evaluation report, ascending."""
        if not self.evals_dir.is_dir():
            return []
        found = (_EVAL_NAME.match(p.name) for p in self.evals_dir.iterdir() if p.is_file())
        return sorted(int(m.group(1)) for m in found if m)

    def evals(self) -> dict[int, dict[str, Any]]:
        """``{step: report}`` of every evaluation report, by step."""
        return {step: self.read_eval(step) for step in self.eval_steps()}

    def read_eval(self, step: int) -> dict[str, Any]:
        path = self.eval_path(step)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            have = ", ".join(map(str, self.eval_steps())) or "none"
            raise ValueError(
                f"{self.path} has no evaluation at step {step} (have: {have})"
            ) from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e.msg})") from None

    # --- finished runs ------------------------------------------------------------------------

    def mark_finished(self, steps: int, summary: Mapping[str, Any] | None = None) -> Path:
        """Record that the run reached ``steps``; call it after the final evaluation.

        The final evaluation's report, when there is one, is named in the record, and
        :meth:`is_finished` checks it is still there. ``summary`` (JSON-serialisable: wall
        time, fingerprint, final metrics ...) is stored with it. Refuses a run whose log
        does not reach ``steps``.
        """
        last = self.last_train_step()
        if last != steps:
            raise ValueError(
                f"cannot mark {self.path} finished at step {steps}: its log ends at step {last}"
            )
        final = self.eval_path(steps)
        record = {
            "format": DONE_FORMAT,
            "steps": steps,
            "final_eval": str(final.relative_to(self.path)) if final.is_file() else None,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **dict(summary or {}),
        }
        write_text_atomic(self.done, json.dumps(record, indent=1, default=str) + "\n")
        return self.done

    def finished(self) -> dict[str, Any] | None:
        """The ``done.json`` record, or None when the run has not finished."""
        if not self.done.is_file():
            return None
        try:
            record = json.loads(self.done.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None  # cannot happen with atomic writes; treat as unfinished
        return record if isinstance(record, dict) else None

    def is_finished(self, steps: int) -> bool:
        """Whether the run finished exactly ``steps`` steps, final evaluation included."""
        record = self.finished()
        if record is None or record.get("steps") != steps:
            return False
        final = record.get("final_eval")
        return final is None or (self.path / final).is_file()

    def clear_finished(self) -> None:
        """Forget the finished mark (a run extended to more steps is running again)."""
        self.done.unlink(missing_ok=True)


def metric_series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` in metrics records, sorted by step.

    Missing, non-numeric and non-finite values are left out; the later record of a step
    wins, so a run resumed from a checkpoint (steps logged twice) gives its final history.

    >>> metric_series([{"step": 2, "x": 1.0}, {"step": 1, "x": None}, {"step": 2, "x": 3}], "x")
    ([2], [3.0])
    """
    by_step: dict[int, float] = {}
    for row in rows:
        value, step = row.get(key), row.get("step")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value) and isinstance(step, int | float):
            by_step[int(step)] = float(value)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


# --- one writer per directory ----------------------------------------------------------------

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the pid in the file decides
    fcntl = None  # type: ignore[assignment]


class DirectoryBusy(ValueError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """Exclusive right to write a directory, for the life of one process.

    ``DIR/writer.lock`` names the holder (pid, command, start time) for the refusal a
    second writer gets. On POSIX the lock itself is an advisory ``flock`` on that file,
    which the kernel drops when the holder dies however it dies: the file a killed writer
    leaves behind is taken over by the next one. Released (and the file removed) on exit;
    a directory that acquiring created is removed again if nothing else was written there.
    """

    def __init__(self, path: str | Path, command: str) -> None:
        self.path = Path(path)
        self.command = command
        self._fd: int | None = None
        self._created = False

    @property
    def file(self) -> Path:
        return self.path / LOCK_FILE

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock; :class:`DirectoryBusy` naming the holder when a live one has it."""
        if self._fd is not None:
            return
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._fd = _take(self.file)
        except DirectoryBusy:
            self._remove_created()
            raise
        record = {
            "pid": os.getpid(),
            "command": self.command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        os.ftruncate(self._fd, 0)
        os.write(self._fd, (json.dumps(record) + "\n").encode())

    def release(self) -> None:
        if self._fd is None:
            return
        self.file.unlink(missing_ok=True)  # still holding it: nobody can take a dead file
        os.close(self._fd)
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        if self._created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()


def _take(file: Path) -> int:
    """An open descriptor of ``file`` holding its exclusive lock."""
    for _ in range(20):
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            holder = _read_holder(file)
            if holder is not None and holder.get("pid") != os.getpid() and _alive(holder):
                os.close(fd)
                raise DirectoryBusy(busy_message(file.parent, holder))
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryBusy(busy_message(file.parent, _read_holder(file) or {})) from None
        try:  # the holder before us may have removed the file between our open and lock
            same = os.stat(file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise DirectoryBusy(f"{file.parent}: cannot take {file.name} (it keeps being replaced)")


def lock_holder(path: str | Path) -> dict[str, Any] | None:
    """The live process holding ``path``'s lock (its record), or None (no lock, or stale)."""
    file = Path(path) / LOCK_FILE
    if not file.is_file():
        return None
    holder = _read_holder(file)
    if fcntl is None:
        return holder if holder is not None and _alive(holder) else None
    try:
        fd = os.open(file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder or {}
    finally:
        os.close(fd)  # closing drops a shared lock taken by this probe
    return None


def busy_message(path: Path, holder: Mapping[str, Any]) -> str:
    """One line naming the live writer of ``path``."""
    what = ", ".join(
        str(v)
        for v in (holder.get("command"), holder.get("started") and f"since {holder['started']}")
        if v
    )
    return (
        f"{path} is being written by another process: pid {holder.get('pid', '?')}"
        f"{f' ({what})' if what else ''}; stop it or wait for it to finish, "
        "or choose another --out"
    )


def _read_holder(file: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(holder: Mapping[str, Any]) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_output_dir(path: Path, flag: str = "--out") -> None:
    """Fail now, in one line, if ``path`` cannot become a writable output directory;
    creates nothing (an error must not leave an empty directory behind)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a directory")
    if path.is_dir():
        probe = path / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ValueError(f"{flag} {path} is not writable: {e.strerror or e}") from None
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path} is not writable: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path} is not writable: permission denied in {parent}")


def _is_passk_config(path: Path) -> bool:
    from passk.train.config import load_config

    try:
        load_config(path)
    except (ValueError, TypeError, yaml.YAMLError):
        return False
    return True


__all__ = [
    "CONFIG_FILE",
    "DONE_FILE",
    "LOCK_FILE",
    "METRICS_FILE",
    "DirectoryBusy",
    "DirectoryLock",
    "RunDir",
    "lock_holder",
    "metric_series",
]
