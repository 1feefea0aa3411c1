"""The trainer's sinks: jsonl, TensorBoard and W&B read back with their own readers,
and the progress bar at narrow and wide terminals."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from passk.train import logging as plog
from passk.train.config import LogConfig
from passk.train.logging import (
    JsonlSink,
    Logger,
    Loggers,
    ProgressSink,
    TensorBoardSink,
    check_record,
    fit_fields,
    open_loggers,
    summary,
)

TRAIN = {
    "kind": "train",
    "step": 3,
    "stage": "main",
    "train/k": 8,
    "reward/mean": 0.412,
    "train/pass@1": 0.301,
    "train/pass@k": 0.552,
    "actor/entropy": 0.813,
    "adv/zero_frac": 0.25,
    "reward/errors": 3,
    "reward/timeouts": 1,
}
EVAL = {"kind": "eval", "step": 3, "eval/pass@1": 0.123, "eval/pass@8": 0.457}


# ------------------------------------------------------------------ records


def test_check_record_cleans_values():
    rec = check_record(
        {
            "kind": "train",
            "step": 2,
            "a": math.nan,
            "b": -math.inf,
            "c": torch.tensor(1.5),
            "d": torch.tensor(float("nan")),
            "e": True,
            "f": None,
            "g": "pass@k",
        }
    )
    assert rec == {
        "kind": "train",
        "step": 2,
        "a": None,
        "b": None,
        "c": 1.5,
        "d": None,
        "e": True,
        "f": None,
        "g": "pass@k",
    }
    assert isinstance(rec["c"], float)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"step": 1}, "kind must be one of train, eval, setup, got None"),
        ({"kind": "test", "step": 1}, "got 'test'"),
        ({"kind": "train"}, "step must be an int >= 0, got None"),
        ({"kind": "train", "step": 1.0}, "got 1.0"),
        ({"kind": "train", "step": True}, "got True"),
        ({"kind": "train", "step": -1}, "got -1"),
        ({"kind": "train", "step": 1, "x": [1, 2]}, "'x' must be a number.*got list"),
        ({"kind": "train", "step": 1, "x": torch.ones(2)}, "'x' must be a number.*got Tensor"),
    ],
)
def test_check_record_rejects_bad_records(record, match):
    with pytest.raises(ValueError, match=match):
        check_record(record)


# -------------------------------------------------------------------- jsonl


def test_jsonl_appends_and_flushes_each_record(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_text('{"kind": "train", "step": 1}\n')
    sink = JsonlSink(path)
    sink.write({"kind": "train", "step": 2, "reward/mean": math.nan, "x": 0.5})
    # readable before close: a crashed run keeps every finished step
    lines = path.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [
        {"kind": "train", "step": 1},
        {"kind": "train", "step": 2, "reward/mean": None, "x": 0.5},
    ]
    sink.close()
    assert "NaN" not in path.read_text()


def test_loggers_check_fan_out_and_close_every_sink():
    class Sink:
        def __init__(self, fail: bool) -> None:
            self.records: list[dict] = []
            self.closed = False
            self.fail = fail

        def write(self, record):
            self.records.append(dict(record))

        def close(self):
            self.closed = True
            if self.fail:
                raise OSError("disk full")

    a, b = Sink(fail=True), Sink(fail=False)
    assert isinstance(a, Logger)
    log = Loggers([a, b])
    log.write({"kind": "setup", "step": 0, "dph/reference_samples": 4, "x": math.inf})
    assert (
        a.records
        == b.records
        == [{"kind": "setup", "step": 0, "dph/reference_samples": 4, "x": None}]
    )
    with pytest.raises(ValueError, match="kind"):
        log.write({"step": 1})
    with pytest.raises(OSError, match="disk full"):
        log.close()
    assert a.closed and b.closed


# -------------------------------------------------------------- tensorboard


def test_tensorboard_scalars_read_back_with_tensorboards_reader(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = TensorBoardSink(tmp_path / "tb")
    sink.write({"kind": "eval", "step": 0, "eval/pass@8": 0.25})
    sink.write({"kind": "train", "step": 1, "reward/mean": 0.5, "stage": "main", "x": None})
    sink.write({"kind": "train", "step": 2, "reward/mean": 0.75, "actor/entropy": math.nan})
    sink.write({"kind": "eval", "step": 2, "eval/pass@8": 0.5})
    sink.close()

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["eval/pass@8", "reward/mean"]  # no str, None, NaN
    read = {
        tag: [(e.step, pytest.approx(e.value)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }
    assert read == {"reward/mean": [(1, 0.5), (2, 0.75)], "eval/pass@8": [(0, 0.25), (2, 0.5)]}


# -------------------------------------------------------------------- wandb


def _wandb_history(run_file: Path) -> list[tuple[int, dict]]:
    """``(step, values)`` of every history record in a ``.wandb`` file.

    The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks,
    each ``crc32 u32, length u16, type u8`` + data (1 full, 2 first, 3 middle, 4 last);
    each assembled record is a ``wandb.proto.wandb_internal_pb2.Record``.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    out, pos, buf = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            if rec.WhichOneof("record_type") == "history":
                values = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in rec.history.item
                }
                out.append((rec.history.step.num, values))
    return out


def test_wandb_offline_run_holds_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-default"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    run_dir = tmp_path / "run"
    log = open_loggers(
        run_dir,
        LogConfig(progress=False, wandb=True, wandb_project="passk-test"),
        run_name="unit",
        config_dict={"seed": 3, "algorithm": {"estimator": "passk_analytic"}},
        total_steps=2,
    )
    log.write({"kind": "eval", "step": 0, "eval/pass@8": 0.25})
    log.write({"kind": "train", "step": 1, "reward/mean": 0.5, "stage": "main"})
    log.write({"kind": "train", "step": 2, "reward/mean": 0.75, "actor/entropy": math.nan})
    log.close()

    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    run_id = (run_dir / "wandb" / "passk-run-id").read_text().strip()
    assert files[0].name == f"run-{run_id}.wandb"
    history = [
        (step, {k: v for k, v in values.items() if not k.startswith("_")})
        for step, values in _wandb_history(files[0])
    ]
    assert history == [
        (0, {"eval/pass@8": 0.25}),
        (1, {"reward/mean": 0.5}),
        (2, {"reward/mean": 0.75}),
    ]
    assert not (tmp_path / "wandb-default").exists()  # everything stays in the run dir
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2


def test_wandb_run_id_is_kept_for_resumption(tmp_path, monkeypatch):
    ids = []

    class FakeWandb:
        def __init__(self, project, name, config, dir, *, run_id=None):
            assert (project, name, dir) == ("proj", "r", tmp_path)
            ids.append(run_id)

        def write(self, record): ...

        def close(self): ...

    monkeypatch.setattr(plog, "WandbSink", FakeWandb)
    cfg = LogConfig(progress=False, wandb=True, wandb_project="proj")
    for _ in range(2):
        open_loggers(tmp_path, cfg, run_name="r", config_dict={}, total_steps=1).close()
    assert ids[0] and ids[0] == ids[1]


# ------------------------------------------------------ missing packages


@pytest.mark.parametrize(
    ("setting", "module", "extra"),
    [("tensorboard", "torch.utils.tensorboard", "tensorboard"), ("wandb", "wandb", "wandb")],
)
def test_missing_package_names_the_setting_and_the_extra(
    tmp_path, monkeypatch, setting, module, extra
):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    cfg = LogConfig(progress=False, **{setting: True})
    with pytest.raises(ValueError, match=rf"log\.{setting}=true.*pip install 'passk\[{extra}\]'"):
        open_loggers(tmp_path, cfg, run_name="r", config_dict={}, total_steps=1)
    # the jsonl sink opened before the failure was closed, not leaked
    assert (tmp_path / "metrics.jsonl").exists()


def test_open_loggers_builds_what_the_config_asks(tmp_path):
    console = Console(width=80, record=True, force_terminal=True)
    log = open_loggers(
        tmp_path,
        LogConfig(progress=True),
        run_name="r",
        config_dict={},
        console=console,
        total_steps=4,
        start_step=1,
    )
    assert [type(s) for s in log.sinks] == [JsonlSink, ProgressSink]
    log.close()
    log = open_loggers(
        tmp_path, LogConfig(progress=True), run_name="r", config_dict={}, total_steps=4
    )
    assert [type(s) for s in log.sinks] == [JsonlSink]  # no console, no bar
    log.close()


# ----------------------------------------------------------------- progress


def render(width: int, *records: dict, terminal: bool = True) -> str:
    console = Console(width=width, record=True, force_terminal=terminal, color_system=None)
    bar = ProgressSink(console, total_steps=8, start_step=0)
    for rec in records:
        bar.write(check_record(rec))
    if terminal:
        console.export_text(clear=True)  # drop the live redraws; keep the final frame
    bar.close()
    return console.export_text()


@pytest.mark.parametrize("width", [80, 200])
def test_progress_shows_the_important_fields(width):
    text = render(width, EVAL, TRAIN)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), text
    assert "3/8" in lines[0]
    for field in (
        "reward 0.412",
        "pass@1 0.301",
        "pass@8 0.552",
        "entropy 0.813",
        "zero-adv 0.25",
        "eval pass@8 0.457",
        "errors 3",
        "timeouts 1",
    ):
        assert field in text, (field, text)
    assert "…" not in text
    assert len(lines) == (3 if width == 80 else 2), text  # two metric lines when narrow


def test_progress_hides_zero_errors_and_drops_low_priority_fields_when_narrow():
    train = {**TRAIN, "reward/errors": 0, "reward/timeouts": 0}
    text = render(200, train)
    assert "errors" not in text and "timeouts" not in text
    text = render(40, EVAL, TRAIN)
    assert all(len(line) <= 40 for line in text.splitlines()), text
    for field in ("reward 0.412", "pass@8 0.552", "eval pass@8 0.457"):
        assert field in text, (field, text)
    assert "zero-adv" not in text  # dropped first


def test_progress_on_a_file_prints_one_line_per_step():
    text = render(80, TRAIN, EVAL, {**TRAIN, "step": 4}, terminal=False)
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("step 3/8  reward 0.412"), text
    assert "eval pass@8 0.457" in lines[1] and "timeouts 1" in lines[1]


def test_progress_rejects_a_start_past_the_end():
    with pytest.raises(ValueError, match="start_step=9, total_steps=8"):
        ProgressSink(Console(), total_steps=8, start_step=9)


def test_fit_fields_keeps_priority_and_display_order():
    fields = [(2, "c" * 5, ""), (0, "a" * 5, ""), (1, "b" * 5, "")]
    assert fit_fields(fields, 12) == [[1, 2]]
    assert fit_fields(fields, 12, lines=2) == [[0, 1], [2]]
    assert fit_fields(fields, 3) == [[1]]  # the most important is always shown


# ------------------------------------------------------------------ summary


def test_summary_reports_reward_errors_and_timeouts():
    records = [{**EVAL, "step": 0, "eval/pass@8": 0.25}, TRAIN, EVAL]
    line = summary(records)
    assert line == (
        "3 steps  reward 0.412  pass@1 0.301  pass@8 0.552  eval pass@8 0.250 -> 0.457  "
        "reward errors 3  timeouts 1"
    )
    assert summary([]) == "0 steps  reward errors 0  timeouts 0"


@pytest.mark.parametrize("on", [True, False], ids=["update_norm", "off"])
def test_log_update_norm_reaches_the_metrics(on, tiny_checkpoint, tmp_path):
    from conftest import tiny_overrides
    from passk.train.config import load_config
    from passk.train.loop import train

    cfg = load_config(
        None,
        [
            *tiny_overrides(tiny_checkpoint),
            "steps=1",
            "eval.problems=0",
            f"log.update_norm={str(on).lower()}",
        ],
    )
    records: list[dict] = []
    train(cfg, tmp_path / "run", on_step=records.append)
    (rec,) = [r for r in records if r.get("kind") == "train"]
    if on:
        # Adam's first step moves every weight with a gradient by ~lr (1e-3 here)
        assert rec["update/delta_norm"] > 0 and 0 < rec["update/delta_rel"] < 1e-2
    else:
        assert "update/delta_norm" not in rec and "update/delta_rel" not in rec
