#!/usr/bin/env bash
# One working session of the countdown_modes study (docs/prereg_countdown_modes.md,
# amendment 2): re-create the start model, check the registered start conditions, run one
# seed's primary pair from it, and copy what git keeps into benchmarks/results/.
#
#   bash scripts/countdown_session.sh SEED            # e.g. 1; about 2 h on a 2-core CPU
#   bash scripts/countdown_session.sh SEED --arms pass1_matched passk_then_pass1
#
# Every step skips what is already done in runs/ (run it again after an interruption):
# the warm-up resumes from its last checkpoint, the sweep from its runs' checkpoints.
# The runs use the code of commit 4005793 (the pinned study code), checked out as a
# worktree under runs/study-code; the sweep file and this repository's paths are main's.
# Stop it with Ctrl-C or `pkill -TERM -f "passk sweep configs/sweeps/countdown_modes.yaml"`:
# the sweep saves its runs' last finished steps.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: bash scripts/countdown_session.sh SEED [--arms ARM ...] (SEED: 0, 1, 2, ...)" >&2
  exit 2
fi
SEED=$1
shift
ARMS=(--arms pass1 passk)
[ $# -gt 0 ] && ARMS=("$@")
STUDY_COMMIT=4005793
CODE=runs/study-code
WARMUP=runs/countdown-sft-r0.10
RESULTS=benchmarks/results/countdown_modes
PY=${PYTHON:-.venv/bin/python}
mkdir -p runs
if [ ! -d "$CODE" ]; then
  git worktree add --detach "$CODE" "$STUDY_COMMIT"
fi
export PYTHONPATH="$PWD/$CODE/src"
stamp() { echo "countdown_session: $* ($(date -u +%H:%M:%S))"; }

if [ ! -f "$WARMUP/model/config.json" ]; then
  stamp "warm-up (about 30-40 min)"
  resume=()
  [ -d "$WARMUP" ] && resume=(--resume)
  "$PY" "$CODE/scripts/countdown_warmup.py" --out "$WARMUP" --rare-share 0.1 --steps 120 "${resume[@]}"
fi
if ! "$PY" -c "import json,sys; sys.exit('check' not in json.load(open('$WARMUP/warmup.json')))"; then
  stamp "start-condition check (40 test problems x 32)"
  "$PY" "$CODE/scripts/countdown_warmup.py" --check "$WARMUP"
fi
"$PY" - "$WARMUP/warmup.json" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
c = w["check"]
na, r32 = c["no_answer_rate"], c["by_source"]["rare"]["32"]
met = na < 0.02 and 0.20 <= r32 <= 0.90
print(f"countdown_session: start model {w['weights_sha256'][:16]}...: no-answer rate {na:.3f} "
      f"(< 0.02), rare pass@32 {r32:.3f} (in [0.20, 0.90]): "
      f"{'met' if met else 'NOT met: the pre-registration stops here'}")
sys.exit(0 if met else 1)
PY
# the start model's record, next to the seed's runs (no machine paths)
sed "s#$PWD/##g" "$WARMUP/warmup.json" > "$RESULTS/warmup_r0.10_s$SEED.json"
sed "s#$PWD/##g" "$WARMUP/check/eval.json" > "$RESULTS/warmup_r0.10_s${SEED}_check_eval.json"

stamp "sweep: seed $SEED, ${ARMS[*]}"
status=0
"$PY" -m passk.cli sweep configs/sweeps/countdown_modes.yaml --out runs/countdown_modes \
  "${ARMS[@]}" --seeds "$SEED" --parallel 2 --threads 1 || status=$?
"$PY" benchmarks/countdown_modes.py collect runs/countdown_modes
stamp "sweep exit $status; collected into $RESULTS/runs"
exit "$status"
