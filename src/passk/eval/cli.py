"""``passk eval``: pass@k, pass^k and maj@k curves with bootstrap error bars.

Three sources of samples, one report:

* ``--model embedded|CHECKPOINT_DIR|RUN_DIR`` (the default): sample a local model on
  ``--task`` (a LoRA adapter checkpoint is evaluated on its base; a run directory means
  its newest checkpoint);
* ``--samples FILE.jsonl``: saved generations, no model (``--samples-format passk`` or
  ``verl``; ``.gz`` or ``-`` for standard input; see :mod:`passk.eval.samples`);
* ``--endpoint URL --served-model NAME``: an OpenAI-compatible server (vLLM, SGLang, ...)
  on ``--task``'s problems, cached in ``OUT/endpoint_cache.jsonl`` so a rerun resumes.

Writes ``OUT/eval.json`` (atomically; refreshed while running, so a killed run keeps
what it finished), ``OUT/passk_curve.png``, ``OUT/maj_curve.png`` and
``OUT/pass1_hist.png``. Ctrl-C writes the problems finished so far
(``"interrupted": true``) and exits with status 130; such a report may be replaced by a
rerun without ``--overwrite``. ``--training-eval RUN`` repeats a training run's own
evaluation exactly (see :mod:`passk.eval.training_eval`).

This module holds the arguments; the flows are :mod:`passk.eval.model_run`,
:mod:`passk.eval.samples_run` and :mod:`passk.eval.endpoint_run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from passk.core.defaults import EVAL_SAMPLES, NUM_RESAMPLES
from passk.rollout.choices import DEVICE_CHOICES, DTYPE_CHOICES

DEFAULT_TASK = "mul1"
DEFAULT_MODEL = "embedded"
# how samples are drawn: (flag, default); with --samples the file decides, so these are
# refused there rather than recorded with values that did not make the samples
SAMPLING_FLAGS: dict[str, tuple[str, Any]] = {
    "n": ("--n", EVAL_SAMPLES),
    "problems": ("--problems", 50),
    "temperature": ("--temperature", 1.0),
    "top_p": ("--top-p", 1.0),
    "max_new_tokens": ("--max-new-tokens", 256),
    "system_prompt": ("--system-prompt", None),
    "problem_seed": ("--problem-seed", None),
}


# settings a training run also has; --training-eval takes the run's unless these differ
# from their defaults (given on the command line)
LOCAL_DEFAULTS: dict[str, Any] = {
    "batch_size": "auto",
    "dtype": "auto",
    "device": "auto",
    "threads": 0,
    "score_timeout": 30.0,
}


def _default(name: str) -> str:
    """The default of sampling flag ``name`` as help text."""
    return f"default {SAMPLING_FLAGS[name][1]}"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except ``None`` (those flags say their default in words)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _HelpConfig(argparse.Action):
    """``passk eval --help-config``: eval has no config file; its flags are the settings."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(
            "passk eval takes no config file (--help-config is passk train's): its settings "
            "are these flags; --training-eval RUN takes a run's evaluation settings.\n"
        )
        parser.print_help()
        parser.exit(0)


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, lists), else a string.

    >>> parse_option("digits=4"), parse_option("dataset=leg_counting")
    (('digits', 4), ('dataset', 'leg_counting'))
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_batch_size(text: str) -> int | Literal["auto"]:
    """``auto`` or a positive integer.

    >>> parse_batch_size("auto"), parse_batch_size("64")
    ('auto', 64)
    >>> parse_batch_size("0")
    Traceback (most recent call last):
    ...
    ValueError: --batch-size must be 'auto' or an integer >= 1, got '0'
    """
    text = str(text).strip()
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--batch-size must be 'auto' or an integer >= 1, got {text!r}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="pass@k evaluation with bootstrap confidence intervals",
        description=__doc__,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--help-config", action=_HelpConfig, help="what configures passk eval")
    p.add_argument(
        "--model",
        default=None,
        help=f"'embedded', a local HF checkpoint dir, a LoRA adapter checkpoint or a run "
        f"dir (its newest checkpoint); default {DEFAULT_MODEL!r}, unless --samples or --endpoint",
    )
    p.add_argument(
        "--base-model",
        default=None,
        help="base model of a LoRA adapter checkpoint (default: the run's model.name, or "
        "the adapter's recorded base)",
    )
    p.add_argument(
        "--task",
        default=None,
        help="task name (see passk.tasks.list_tasks), rg:NAME or module:factory "
        f"(default {DEFAULT_TASK!r}; with --samples: none, unless responses need scoring)",
    )
    p.add_argument(
        "--task-option",
        action="extend",
        nargs="+",
        default=[],
        type=parse_option,
        metavar="KEY=VALUE",
        help="task constructor options (repeatable), e.g. digits=4, or "
        "path=FILE.jsonl id_field=unique_id",
    )
    p.add_argument(
        "--reward",
        default=None,
        help="score with this reward (registry name or module:function) instead of the task's",
    )
    p.add_argument("--split", default=None, choices=["test", "train", "all"], help="default test")
    p.add_argument(
        "--problems",
        type=int,
        default=None,
        help=f"number of problems ({_default('problems')}; fewer if the split is smaller; "
        "not with --samples)",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"samples per problem ({_default('n')}; not with --samples)",
    )
    p.add_argument(
        "--k", type=int, nargs="+", default=None, help="k values (default 1, 2, 4, ..., n)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the samples, the bootstrap and (unless --problem-seed) the problem "
        "choice (default 0)",
    )
    p.add_argument(
        "--problem-seed",
        type=int,
        default=None,
        help="seed that picks the problems (default: --seed; a training run's evaluation "
        "uses 0, see --training-eval)",
    )
    p.add_argument("--temperature", type=float, default=None, help=_default("temperature"))
    p.add_argument("--top-p", type=float, default=None, help=_default("top_p"))
    p.add_argument("--max-new-tokens", type=int, default=None, help=_default("max_new_tokens"))
    p.add_argument(
        "--batch-size",
        default=LOCAL_DEFAULTS["batch_size"],
        help="sequences in flight: an integer >= 1, or 'auto' (up to 256, as memory allows)",
    )
    p.add_argument("--dtype", default=LOCAL_DEFAULTS["dtype"], choices=DTYPE_CHOICES)
    p.add_argument(
        "--device",
        default=LOCAL_DEFAULTS["device"],
        help=f"one of {', '.join(DEVICE_CHOICES)} or cuda:N",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=LOCAL_DEFAULTS["threads"],
        help="CPU threads for torch (0: torch's default); 1 is often faster on a busy machine",
    )
    p.add_argument(
        "--score-timeout",
        type=float,
        default=LOCAL_DEFAULTS["score_timeout"],
        help="seconds per scoring call; 0 scores in-process without a timeout",
    )
    p.add_argument(
        "--num-resamples", type=int, default=NUM_RESAMPLES, help="bootstrap resamples for the CI"
    )
    p.add_argument("--system-prompt", default=None)
    p.add_argument(
        "--training-eval",
        type=Path,
        default=None,
        metavar="RUN",
        help="repeat run RUN's own evaluation: its task, problems, seeds, n, sampling and "
        "batch size (--model: a checkpoint of RUN, default its newest; the base model "
        "repeats step 0)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    src = p.add_argument_group("saved samples (no model)")
    src.add_argument(
        "--samples",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSONL of saved samples (.gz read too; '-': standard input)",
    )
    src.add_argument(
        "--samples-format",
        default="passk",
        choices=["passk", "verl", "human-eval", "evalplus", "lm-eval", "lighteval", "verifiers"],
        help="passk: problem_id + correct/score/response lines; verl: a validation dump; "
        "the others: that harness's sample log (see docs/eval.md)",
    )
    src.add_argument(
        "--correct-threshold",
        type=float,
        default=1.0,
        help="a line's 'score' counts as correct when >= this ('correct', when a line has "
        "it, decides)",
    )
    src.add_argument(
        "--score-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="declared range of 'score'; a score outside it is an error (default: any)",
    )
    ep = p.add_argument_group("OpenAI-compatible endpoint")
    ep.add_argument("--endpoint", default=None, metavar="URL", help="e.g. http://127.0.0.1:8000/v1")
    ep.add_argument("--served-model", default=None, help="the model name the server serves")
    ep.add_argument(
        "--api",
        default="chat",
        choices=["chat", "completions"],
        help="chat: the prompt as a user message (the server applies the chat template); "
        "completions: the raw prompt text (the system prompt, if any, and a blank line first)",
    )
    ep.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    ep.add_argument("--request-timeout", type=float, default=120.0, help="seconds per request")
    ep.add_argument("--retries", type=int, default=5, help="retries per failing request")
    ep.add_argument(
        "--no-request-seed",
        action="store_true",
        help="send no per-request seed (derived from --seed by default): for servers that "
        "reject seeds; vLLM's CPU build needs --no-enable-chunked-prefill to honour them",
    )
    ep.add_argument(
        "--no-models-check",
        action="store_true",
        help="do not ask GET /v1/models whether the server serves --served-model (a server "
        "without that route is noted and used anyway)",
    )
    ep.add_argument(
        "--tokenizer",
        default=None,
        metavar="DIR",
        help="a local tokenizer (a checkpoint directory) that counts the completion tokens "
        "of answers the server gives no 'usage' for (without it their tokens are reported "
        "unknown)",
    )
    ep.add_argument(
        "--refresh-cache",
        action="store_true",
        help="delete OUT/endpoint_cache.jsonl first and ask the server for every sample "
        "(by default cached answers for the same model name and options are reused, "
        "with --overwrite too)",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished report in --out (without it such a directory is refused; "
        "an endpoint's cache is kept: see --refresh-cache)",
    )
    # --training-eval: the dtype the trainer's sampling copy is cast to after loading
    p.set_defaults(func=run, sample_dtype=None)
    return p


def run(args: argparse.Namespace) -> int:
    """Entry point of ``passk eval``: bad settings print one clear line and exit with 2."""
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"passk eval: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk or a vanished directory while writing the report
        where = f" ({e.filename})" if e.filename else ""
        print(
            f"passk eval: error: cannot write the report: {e.strerror or e}{where}", file=sys.stderr
        )
        return 2


def resolve_defaults(args: argparse.Namespace) -> None:
    """Refuse sampling flags with ``--samples`` (the file decides them), else fill in
    their defaults; ``--seed`` 0 and ``--split`` test in every flow."""
    if args.samples is not None:
        given = [
            flag for name, (flag, _) in SAMPLING_FLAGS.items() if getattr(args, name) is not None
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} {'says' if len(given) == 1 else 'say'} how to draw samples; "
                f"--samples {args.samples} holds samples already drawn (its lines decide n and "
                "the problems; the sampling settings are recorded as unknown): leave "
                f"{'it' if len(given) == 1 else 'them'} out"
            )
    else:
        for name, (_, default) in SAMPLING_FLAGS.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
    args.seed = 0 if args.seed is None else args.seed
    args.split = args.split or "test"
    if args.samples is None and args.problem_seed is None:
        args.problem_seed = args.seed
    if args.samples is None and args.endpoint is None:
        args.model = args.model or DEFAULT_MODEL
    if args.samples is None:
        args.task = args.task or DEFAULT_TASK


def check_args(args: argparse.Namespace) -> None:
    """Every setting that can be checked without a model, named by its flag (a sampling
    flag that does not apply, None, is not checked)."""

    def unset_or(name: str, ok: Any) -> bool:
        return getattr(args, name) is None or bool(ok(getattr(args, name)))

    checks = [
        (unset_or("n", lambda v: v >= 1), f"--n must be >= 1, got {args.n}"),
        (unset_or("problems", lambda v: v >= 1), f"--problems must be >= 1, got {args.problems}"),
        (args.threads >= 0, f"--threads must be >= 0 (0: torch's default), got {args.threads}"),
        (
            args.score_timeout >= 0,
            f"--score-timeout must be >= 0 (0: no timeout), got {args.score_timeout}",
        ),
        (
            unset_or("temperature", lambda v: v >= 0),
            f"--temperature must be >= 0, got {args.temperature}",
        ),
        (unset_or("top_p", lambda v: 0 < v <= 1), f"--top-p must be in (0, 1], got {args.top_p}"),
        (
            unset_or("max_new_tokens", lambda v: v >= 1),
            f"--max-new-tokens must be >= 1, got {args.max_new_tokens}",
        ),
        (args.num_resamples >= 1, f"--num-resamples must be >= 1, got {args.num_resamples}"),
        (
            not (args.samples is not None and args.endpoint is not None),
            "--samples and --endpoint are two sources of samples; give one",
        ),
        (
            args.model is None or (args.samples is None and args.endpoint is None),
            "--model samples a local model; it does not go with --samples or --endpoint",
        ),
        (
            args.endpoint is None or bool(args.served_model),
            "--endpoint needs --served-model NAME (the model name the server serves)",
        ),
        (
            getattr(args, "tokenizer", None) is None or args.endpoint is not None,
            "--tokenizer counts the tokens of an --endpoint's answers; it goes with --endpoint",
        ),
        (args.concurrency >= 1, f"--concurrency must be >= 1, got {args.concurrency}"),
        (args.request_timeout > 0, f"--request-timeout must be > 0, got {args.request_timeout}"),
        (args.retries >= 0, f"--retries must be >= 0, got {args.retries}"),
        (
            args.score_range is None or args.score_range[0] <= args.score_range[1],
            f"--score-range LO HI needs LO <= HI, got {args.score_range}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    for k in args.k or ():
        if k < 1:
            raise ValueError(f"--k values must be >= 1, got {k}")


def check_out_dir(out: Path, overwrite: bool) -> None:
    """``--out`` must be a writable directory that holds no finished report (unless
    ``--overwrite``): an interrupted new run must not destroy a complete old one."""
    from passk.train.run_dir import check_output_dir

    check_output_dir(out)
    report = out / "eval.json"
    if report.is_file() and not overwrite:
        try:
            finished = not json.loads(report.read_text(encoding="utf-8")).get("interrupted")
        except (OSError, ValueError):
            finished = False  # unreadable: not a report worth keeping
        if finished:
            raise ValueError(
                f"{report} holds a finished report; pass --overwrite to replace it or "
                "choose another --out"
            )


def _run(args: argparse.Namespace) -> int:
    if args.training_eval is not None:
        from passk.eval.training_eval import apply_training_eval

        notes = apply_training_eval(args, LOCAL_DEFAULTS)
        for note in notes:
            print(f"passk eval: note: {note}", file=sys.stderr)
    batch_size = parse_batch_size(args.batch_size)  # bad values fail before anything loads
    resolve_defaults(args)
    check_args(args)
    check_out_dir(args.out, args.overwrite)
    if args.samples is not None:
        from passk.eval.samples_run import run_samples

        return run_samples(args)
    if args.endpoint is not None:
        from passk.eval.endpoint_run import run_endpoint

        return run_endpoint(args)
    from passk.eval.model_run import run_model

    return run_model(args, batch_size)
