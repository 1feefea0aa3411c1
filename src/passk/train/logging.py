"""Where the trainer's records go: one :class:`Logger` interface, several sinks.

A record is a flat mapping with ``"kind"`` (one of :data:`RECORD_KINDS`), an int
``"step"`` and namespaced metrics (``"reward/mean"``, ``"eval/pass@8"``) whose values
are numbers, strings, bools or None. Every sink gets the record :func:`check_record`
returned: non-finite floats become None (``null`` in JSON), 0-d tensors and numpy
scalars become Python numbers, anything else is a ValueError naming the key.

* :class:`JsonlSink` appends one JSON line per record and flushes it (the file
  ``passk plot`` and resumption read; always on);
* :class:`TensorBoardSink` and :class:`WandbSink` mirror the numeric values (extras
  ``passk[tensorboard]``, ``passk[wandb]``; W&B honours ``WANDB_MODE=offline``);
* :class:`ProgressSink` draws a rich progress bar with the metrics that matter, fitted
  to the terminal's width.

:func:`open_loggers` builds what a :class:`~passk.train.config.LogConfig` asks for;
:func:`summary` is the end-of-run line.

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "metrics.jsonl"
>>> log = Loggers([JsonlSink(path)])
>>> log.write({"kind": "train", "step": 1, "reward/mean": 0.5, "actor/entropy": float("nan")})
>>> log.close()
>>> path.read_text()
'{"kind": "train", "step": 1, "reward/mean": 0.5, "actor/entropy": null}\\n'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from passk.train.run_dir import RunDir

if TYPE_CHECKING:
    from passk.train.config import LogConfig

RECORD_KINDS = ("train", "eval", "setup")
Value = int | float | str | bool | None


@runtime_checkable
class Logger(Protocol):
    """Anything records can be written to."""

    def write(self, record: Mapping[str, Any]) -> None:
        """Take one record (see the module docstring); sinks may ignore kinds they do not show."""

    def close(self) -> None:
        """Flush and release files, runs and the terminal; called once, at the end."""


def check_record(record: Mapping[str, Any]) -> dict[str, Value]:
    """The record every sink receives: checked, with non-finite floats as None.

    >>> check_record({"kind": "eval", "step": 4, "eval/pass@1": float("inf"), "ok": True})
    {'kind': 'eval', 'step': 4, 'eval/pass@1': None, 'ok': True}
    >>> check_record({"kind": "test", "step": 1})
    Traceback (most recent call last):
    ...
    ValueError: record kind must be one of train, eval, setup, got 'test'
    """
    kind = record.get("kind")
    if kind not in RECORD_KINDS:
        raise ValueError(f"record kind must be one of {', '.join(RECORD_KINDS)}, got {kind!r}")
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"record step must be an int >= 0, got {step!r} ({kind} record)")
    out: dict[str, Value] = {}
    for key, value in record.items():
        if not isinstance(key, str):
            raise ValueError(f"record keys must be strings, got {key!r} ({kind} record)")
        if not isinstance(value, int | float | str | bool | type(None)):
            value = _scalar(key, value)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


def _scalar(key: str, value: Any) -> int | float | bool:
    """A 0-d tensor or numpy scalar as a Python number (``.item()`` happens here)."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            v = item()
        except (ValueError, RuntimeError):  # more than one element
            v = None
        if isinstance(v, int | float | bool):
            return v
    raise ValueError(
        f"record value {key!r} must be a number, string, bool or None, "
        f"got {type(value).__name__}: {value!r:.80}"
    )


def _numeric(record: Mapping[str, Value]) -> dict[str, float]:
    """The values a chart can plot: finite numbers and bools, ``step`` left out."""
    return {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, int | float)}


class Loggers:
    """Fan a record out to several sinks; ``close`` closes all of them even if one fails."""

    def __init__(self, sinks: Sequence[Logger]) -> None:
        self.sinks = list(sinks)

    def write(self, record: Mapping[str, Any]) -> None:
        clean = check_record(record)
        for sink in self.sinks:
            sink.write(clean)

    def close(self) -> None:
        errors = []
        for sink in reversed(self.sinks):
            try:
                sink.close()
            except Exception as e:  # every sink must still get its close
                errors.append(e)
        self.sinks = []
        if errors:
            raise errors[0]

    def __enter__(self) -> Loggers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonlSink:
    """Append each record to ``path`` as one JSON line, flushed at once (a crash loses
    at most the line being written)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(check_record(record), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardSink:
    """Numeric values as TensorBoard scalars (tag = metric name) at the record's step."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ValueError(
                "log.tensorboard=true needs the tensorboard package: "
                "pip install 'passk[tensorboard]' (or set log.tensorboard=false)"
            ) from e
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(str(self.log_dir))

    def write(self, record: Mapping[str, Any]) -> None:
        clean = check_record(record)
        for key, value in _numeric(clean).items():
            self._writer.add_scalar(key, value, clean["step"])
        self._writer.flush()  # one flush per step: a crashed run keeps its curves

    def close(self) -> None:
        self._writer.close()


class WandbSink:
    """Numeric values logged to a Weights & Biases run at the record's step.

    The run's files go to ``dir/wandb/``. ``WANDB_MODE=offline`` keeps everything local
    (``wandb sync`` uploads it later). With ``run_id`` an existing run is continued
    (``resume="allow"``); W&B drops values logged at a step below one it already has.
    """

    def __init__(
        self,
        project: str,
        name: str,
        config: Mapping[str, Any],
        dir: str | Path,
        *,
        run_id: str | None = None,
    ) -> None:
        try:
            import wandb
        except ImportError as e:
            raise ValueError(
                "log.wandb=true needs the wandb package: "
                "pip install 'passk[wandb]' (or set log.wandb=false)"
            ) from e
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project,
            name=name,
            config=dict(config),
            dir=str(self.dir),
            id=run_id,
            resume="allow" if run_id else None,
        )

    def write(self, record: Mapping[str, Any]) -> None:
        clean = check_record(record)
        values = _numeric(clean)
        if values:
            self.run.log(values, step=clean["step"])

    def close(self) -> None:
        import wandb

        self.run.finish()
        if wandb.run is None:
            # finish() can return before W&B's service process has written the run's
            # file; shutting the service down waits for it (the next init restarts it)
            wandb.teardown()


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _eval_ks(record: Mapping[str, Any]) -> list[int]:
    ks = []
    for key in record:
        if key.startswith("eval/pass@"):
            try:
                ks.append(int(key.removeprefix("eval/pass@")))
            except ValueError:
                continue
    return sorted(ks)


def metric_fields(
    train: Mapping[str, Any] | None, evaluation: Mapping[str, Any] | None
) -> list[tuple[int, str, str]]:
    """``(priority, text, style)`` of the metrics the progress bar shows, in display
    order; a lower priority number is kept longer when the line is too narrow.

    >>> [t for _, t, _ in metric_fields({"reward/mean": 0.5, "train/k": 4}, None)]
    ['reward 0.500', 'pass@1 -', 'pass@4 -', 'entropy -', 'zero-adv -']
    """
    fields: list[tuple[int, str, str]] = []
    if train is not None:
        k = train.get("train/k", 1)
        fields.append((0, f"reward {_fmt(train.get('reward/mean'))}", "bold"))
        fields.append((2, f"pass@1 {_fmt(train.get('train/pass@1'))}", ""))
        if k != 1:
            fields.append((1, f"pass@{k} {_fmt(train.get('train/pass@k'))}", ""))
        fields.append((5, f"entropy {_fmt(train.get('actor/entropy'))}", ""))
        fields.append((6, f"zero-adv {_fmt(train.get('adv/zero_frac'), 2)}", ""))
    if evaluation is not None and (ks := _eval_ks(evaluation)):
        top = ks[-1]
        if ks[0] != top:
            fields.append(
                (7, f"eval pass@{ks[0]} {_fmt(evaluation[f'eval/pass@{ks[0]}'])}", "cyan")
            )
        fields.append((3, f"eval pass@{top} {_fmt(evaluation[f'eval/pass@{top}'])}", "bold cyan"))
    if train is not None:
        for key, label in (("reward/errors", "errors"), ("reward/timeouts", "timeouts")):
            n = train.get(key)
            if isinstance(n, int | float) and n:
                fields.append((4, f"{label} {_fmt(n)}", "bold red"))
    return fields


def fit_fields(
    fields: Sequence[tuple[int, str, str]], width: int, lines: int = 1, sep: str = "  "
) -> list[list[int]]:
    """Lay ``fields`` out on at most ``lines`` lines of ``width`` columns, in display
    order; the most important (lowest priority number) are placed first and a field
    that no longer fits is dropped. Returns the field indices of each line.

    >>> fields = [(1, "aaaa", ""), (0, "bbbb", ""), (2, "cc", "")]
    >>> fit_fields(fields, 10), fit_fields(fields, 10, lines=2)
    ([[0, 1]], [[0, 1], [2]])
    """
    keep: list[int] = []
    for i in sorted(range(len(fields)), key=lambda i: fields[i][0]):
        packed = _pack([fields[j][1] for j in sorted([*keep, i])], width, sep)
        if len(packed) <= lines:
            keep.append(i)
    order = sorted(keep)
    return [[order[j] for j in line] for line in _pack([fields[i][1] for i in order], width, sep)]


def _pack(texts: Sequence[str], width: int, sep: str) -> list[list[int]]:
    """Fill lines left to right; a text longer than ``width`` gets a line of its own."""
    out: list[list[int]] = []
    used = 0
    for i, text in enumerate(texts):
        if out and used + len(sep) + len(text) <= width:
            out[-1].append(i)
            used += len(sep) + len(text)
        else:
            out.append([i])
            used = len(text)
    return out


class _MetricsLine:
    """A rich renderable: the metric fields that fit the width it is drawn at, on one
    line when the terminal is wide and on two when it is narrow."""

    def __init__(self, lines: int = 2) -> None:
        self.lines = lines
        self.train: Mapping[str, Any] | None = None
        self.evaluation: Mapping[str, Any] | None = None

    def text(self, width: int, lines: int | None = None) -> Text:
        fields = metric_fields(self.train, self.evaluation)
        out = Text(no_wrap=True, overflow="ellipsis")
        for n, line in enumerate(fit_fields(fields, width, lines or self.lines)):
            if n:
                out.append("\n")
            for m, i in enumerate(line):
                if m:
                    out.append("  ")
                out.append(fields[i][1], style=fields[i][2])
        return out

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield self.text(options.max_width)


class _BarWithMetrics(Progress):
    """A rich progress bar that draws a :class:`_MetricsLine` below its row."""

    def __init__(self, line: _MetricsLine, *columns: Any, **kwargs: Any) -> None:
        self.line = line  # before super().__init__, which renders once
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[Any]:
        yield self.make_tasks_table(self.tasks)
        if self.line.train is not None or self.line.evaluation is not None:
            yield self.line


class ProgressSink:
    """A progress bar over the training steps and, below it, the latest metrics.

    The metrics line keeps the fields that fit the terminal: reward, train pass@k,
    train pass@1, eval pass@k (largest k), reward errors and timeouts (when nonzero),
    entropy, zero-advantage fraction, eval pass@1, dropped in reverse order. On a
    console that is not a terminal (output redirected to a file) one line per
    training step is printed instead of a live bar.
    """

    def __init__(self, console: Any, total_steps: int, start_step: int = 0) -> None:
        if total_steps < 0 or not 0 <= start_step <= max(total_steps, 0):
            raise ValueError(
                f"need 0 <= start_step <= total_steps, got start_step={start_step}, "
                f"total_steps={total_steps}"
            )
        self.console = console
        self.total_steps = total_steps
        self.line = _MetricsLine()
        self.live = bool(console.is_terminal)
        self.bar = _BarWithMetrics(
            self.line,
            TextColumn("[bold]train"),
            BarColumn(bar_width=None if console.width < 100 else 40),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            expand=console.width < 100,
        )
        self.task = self.bar.add_task("train", total=total_steps, completed=start_step)
        if self.live:
            self.bar.start()

    def write(self, record: Mapping[str, Any]) -> None:
        kind, step = record.get("kind"), record.get("step")
        if kind == "eval":
            self.line.evaluation = record
        elif kind == "train":
            self.line.train = record
            self.bar.update(self.task, completed=step)
        else:
            return
        if self.live:
            self.bar.refresh()
        elif kind == "train":
            # a log file is not cut at the console's width: every field, one line
            self.console.print(
                f"step {step}/{self.total_steps}  ",
                self.line.text(1 << 20, 1),
                sep="",
                soft_wrap=True,
            )

    def close(self) -> None:
        if self.live:
            self.bar.stop()


def open_loggers(
    run_dir: RunDir | str | Path,
    log_config: LogConfig,
    *,
    run_name: str,
    config_dict: Mapping[str, Any],
    console: Any = None,
    total_steps: int,
    start_step: int = 0,
) -> Loggers:
    """The sinks ``log_config`` (a :class:`~passk.train.config.LogConfig`) asks for.

    Always ``run_dir/metrics.jsonl``; ``tensorboard`` -> ``run_dir/tensorboard/``;
    ``wandb`` -> a run in ``wandb_project`` named ``run_name`` with ``config_dict`` as
    its config, files in ``run_dir/wandb/`` (its id is kept there, so a resumed
    training run continues the same W&B run); ``progress`` (and a ``console``) -> the
    progress bar. A missing package is a ValueError naming the setting and the extra.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    sinks: list[Logger] = []
    try:
        sinks.append(JsonlSink(run.metrics))
        if log_config.tensorboard:
            sinks.append(TensorBoardSink(run.tensorboard))
        if log_config.wandb:
            sinks.append(
                WandbSink(
                    log_config.wandb_project,
                    run_name,
                    config_dict,
                    run.path,
                    run_id=_wandb_run_id(run),
                )
            )
        if log_config.progress and console is not None:
            sinks.append(ProgressSink(console, total_steps, start_step))
    except BaseException:
        Loggers(sinks).close()
        raise
    return Loggers(sinks)


def _wandb_run_id(run: RunDir) -> str:
    """The W&B run id of this run directory, made on first use."""
    path = run.wandb / "passk-run-id"
    if path.is_file() and (text := path.read_text(encoding="utf-8").strip()):
        return text
    run_id = os.urandom(6).hex()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n", encoding="utf-8")
    return run_id


def summary(records: Iterable[Mapping[str, Any]]) -> str:
    """The end-of-run line: steps, the last step's reward and train pass@k, the first
    and last evaluation's pass@k (largest k), reward errors and timeouts.

    ``reward/errors`` and ``reward/timeouts`` are the scorer's counts so far, so the
    last training record's values are the run's totals.

    >>> print(summary([
    ...     {"kind": "eval", "step": 0, "eval/pass@1": 0.1, "eval/pass@8": 0.4},
    ...     {"kind": "train", "step": 1, "reward/mean": 0.25, "train/pass@1": 0.25,
    ...      "train/pass@k": 0.5, "train/k": 4, "reward/errors": 2},
    ...     {"kind": "eval", "step": 1, "eval/pass@1": 0.2, "eval/pass@8": 0.5},
    ... ]))
    1 steps  reward 0.250  pass@1 0.250  pass@4 0.500  eval pass@8 0.400 -> 0.500  reward errors 2  timeouts 0
    """
    records = list(records)
    train = [r for r in records if r.get("kind", "train") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    last = train[-1] if train else {}
    parts = [f"{last.get('step', 0)} steps"]
    if train:
        k = last.get("train/k", 1)
        parts.append(f"reward {_fmt(last.get('reward/mean'))}")
        parts.append(f"pass@1 {_fmt(last.get('train/pass@1'))}")
        if k != 1:
            parts.append(f"pass@{k} {_fmt(last.get('train/pass@k'))}")
    if evals and (ks := _eval_ks(evals[-1])):
        key = f"eval/pass@{ks[-1]}"
        values = [_fmt(evals[0].get(key)), _fmt(evals[-1][key])][-len(evals) :]
        parts.append(f"eval pass@{ks[-1]} " + " -> ".join(values))
    errors, timeouts = last.get("reward/errors") or 0, last.get("reward/timeouts") or 0
    parts.append(f"reward errors {_fmt(errors)}  timeouts {_fmt(timeouts)}")
    return "  ".join(parts)
