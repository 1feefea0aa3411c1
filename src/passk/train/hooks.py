"""What happens between steps, as small hooks the loop calls in order.

After each step the loop calls every hook's :meth:`Hook.before_log` (they may add to the
step's record), writes the record, then calls every hook's :meth:`Hook.after_log` (they
may write records of their own). The default order (:func:`default_hooks`):

1. :class:`ReferenceReset` - ProRL resets every M steps or on a KL spike;
2. :class:`StageAdvance` - the stage schedule observes the step (Pass@k -> Pass@1);
3. :class:`Evaluation` - held-out evaluation when due (and stagnation resets);
4. :class:`Checkpoint` - atomic checkpoint when due;
5. :class:`NanGuard` - counts skipped non-finite updates, stops a diverged run
   (after the checkpoint, which holds the last finite weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from passk.train.loop import Trainer


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


class Logger(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...


class Hook:
    """Base hook: both phases do nothing."""

    def before_log(self, t: Trainer, record: dict[str, Any]) -> None:
        return None

    def after_log(self, t: Trainer, record: dict[str, Any], log: Logger) -> None:
        return None


class ReferenceReset(Hook):
    """ProRL: reset the reference to the current policy every M steps or on a KL spike."""

    def before_log(self, t: Trainer, record: dict[str, Any]) -> None:
        ref, step = t.config.reference, t.state.step
        kl = record.get("actor/kl")
        if ref.reset_every and step % ref.reset_every == 0:
            t.reset_reference(record, "every")
        elif ref.reset_kl_above is not None and kl is not None and kl > ref.reset_kl_above:
            t.reset_reference(record, "kl")


class StageAdvance(Hook):
    """The stage schedule sees the step's reward; a finished stage hands over to the next."""

    def before_log(self, t: Trainer, record: dict[str, Any]) -> None:
        if t.schedule.observe(t.state.step, record["reward/mean"]):
            record["stage/switched"] = 1


class Evaluation(Hook):
    """Held-out evaluation every ``eval.every`` steps and at the end."""

    def before_log(self, t: Trainer, record: dict[str, Any]) -> None:
        e, step = t.config.eval, t.state.step
        # set before the record is written: a checkpoint from here on re-runs the evaluation
        t.state.pending_eval = bool(t.heldout.problems) and (
            (e.every > 0 and step % e.every == 0) or (step == t.config.steps and e.at_end)
        )

    def after_log(self, t: Trainer, record: dict[str, Any], log: Logger) -> None:
        if t.state.pending_eval:
            run_pending_evaluation(t, log)


def run_pending_evaluation(t: Trainer, log: Logger) -> dict[str, Any]:
    """Evaluate now, log it, and let reference resets watch it for stagnation."""
    rec = evaluate(t, t.state.step)
    observe_stagnation(t, rec)
    log.write(rec)
    t.state.pending_eval = False
    t.last_eval = rec
    return rec


def observe_stagnation(t: Trainer, eval_rec: dict[str, Any]) -> bool:
    """Reset when ``reference.reset_metric`` has not improved for ``reset_patience``
    evaluations; True when it did."""
    ref, st = t.config.reference, t.state
    value = eval_rec.get(ref.reset_metric)
    if not ref.reset_patience or value is None:
        return False
    if st.best_eval is None or value > st.best_eval:
        st.best_eval, st.evals_since_best = value, 0
        return False
    st.evals_since_best += 1
    if st.evals_since_best < ref.reset_patience:
        return False
    st.evals_since_best = 0
    t.reset_reference(eval_rec, "stagnation")
    return True


def evaluate(t: Trainer, step: int) -> dict[str, Any]:
    """Evaluate the sampling policy on the held-out problems (:class:`~passk.train.heldout.
    HeldOut`); write its report; a record."""
    return t.heldout.evaluate(t.sampler, step, t.notify)


class Checkpoint(Hook):
    """An atomic checkpoint every ``checkpoint.every`` steps and at the last step."""

    def after_log(self, t: Trainer, record: dict[str, Any], log: Logger) -> None:
        step = t.state.step
        if step % t.config.checkpoint.every == 0 or step == t.config.steps:
            t.save()


class NanGuard(Hook):
    """Counts steps whose every update was skipped as non-finite; stops after too many."""

    def before_log(self, t: Trainer, record: dict[str, Any]) -> None:
        st = t.state
        skipped = record.get("update/skipped_steps", 0) or 0
        done = record.get("update/optimizer_steps", 0) or 0
        if skipped and not done:
            st.nan_total += 1
            st.nan_streak += 1
        else:
            st.nan_streak = 0
        record["nan/skipped_total"] = st.nan_total

    def after_log(self, t: Trainer, record: dict[str, Any], log: Logger) -> None:
        st, limit = t.state, t.config.optim.max_nan_steps
        if st.nan_streak >= limit:
            raise TrainingDiverged(
                f"{st.nan_streak} consecutive steps had a non-finite loss or gradient "
                f"(optim.max_nan_steps={limit}); stopped at step {st.step}. "
                f"The last checkpoint ({t.last_checkpoint}) holds finite weights."
            )


def default_hooks() -> list[Hook]:
    return [ReferenceReset(), StageAdvance(), Evaluation(), Checkpoint(), NanGuard()]
