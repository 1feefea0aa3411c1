#!/usr/bin/env bash
# One-shot GPU check (about 10 minutes on one GPU). Runs, in order:
#   1. the tests that exercise CUDA where it exists (every test file that asks
#      torch.cuda.is_available(), fast tests only);
#   2. a timed `passk train` of the embedded model on the GPU in bf16 (3 steps);
#   3. `passk eval` throughput of the embedded model on the GPU (bf16);
#   4. if vLLM imports: verl's own trainer (tests/integration/verl_cpu/harness.py) for
#      2 steps with vLLM rollouts on the GPU (skipped, and said so, otherwise).
# and writes the figures, with the device name, to
# benchmarks/results/gpu_check_<device>.json (PASSK_GPU_CHECK_OUT to change).
#
#   bash scripts/gpu_check.sh              # on a GPU machine, after scripts/setup.sh
#   bash scripts/gpu_check.sh --dry-run    # the same plumbing on CPU, tiny sizes (~2 min)
#
# --dry-run exists so the script is tested without a GPU (tests/integration/
# test_gpu_check.py): it runs every stage on the CPU with tiny sizes, skips the vLLM
# stage, and writes to a scratch file unless PASSK_GPU_CHECK_OUT is set. Its figures
# describe nothing and must not be committed. Without --dry-run and without CUDA the
# script stops at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "gpu_check.sh: unknown argument '$1' (valid: --dry-run)" >&2; exit 2 ;;
esac
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/passk_gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; DTYPE=fp32; AMP=none; STEPS=1; N=5; PROBLEMS=1; TOKENS=4; PROMPTS=1
  TEST_FILTER=(-k cuda)  # the plumbing only: the CUDA tests themselves skip on CPU
else
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check.sh: torch sees no CUDA device; run it on a GPU machine (or --dry-run)" >&2
    exit 2
  fi
  DEVICE=cuda; DTYPE=bf16; AMP=bf16; STEPS=3; N=16; PROBLEMS=64; TOKENS=96; PROMPTS=8
  TEST_FILTER=()
fi
NAME=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if '$DEVICE' == 'cuda' else 'cpu')")
SLUG=$(echo "$NAME" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '_' | sed 's/_$//')
if [ "$DRY" = 1 ]; then
  OUT=${PASSK_GPU_CHECK_OUT:-$WORK/gpu_check_dry_run.json}
else
  OUT=${PASSK_GPU_CHECK_OUT:-benchmarks/results/gpu_check_${SLUG}.json}
fi
now() { "$PY" -c 'import time; print(f"{time.time():.3f}")'; }

echo "== 1/4 CUDA tests on $NAME"
mapfile -t CUDA_TESTS < <(grep -rl 'cuda.is_available' tests --include='test_*.py' | sort)
set +e
"$PY" -m pytest -q -p no:cacheprovider -m 'not slow' "${TEST_FILTER[@]}" \
  --junitxml="$WORK/cuda_tests.xml" "${CUDA_TESTS[@]}" > "$WORK/cuda_tests.log" 2>&1
TESTS_RC=$?
set -e
tail -3 "$WORK/cuda_tests.log"

echo "== 2/4 passk train, embedded model, $STEPS steps of $PROMPTS x $N on $DEVICE (rollout $DTYPE, autocast $AMP)"
T0=$(now)
"$PY" -m passk.cli train --out "$WORK/train" --steps "$STEPS" --no-progress \
  --set model.device="$DEVICE" --set model.autocast="$AMP" --set model.rollout_dtype="$DTYPE" \
  --set rollout.max_new_tokens="$TOKENS" --set rollout.n="$N" \
  --set rollout.prompts_per_step="$PROMPTS" \
  --set eval.at_start=false --set eval.at_end=false > "$WORK/train.log" 2>&1 \
  || { tail -20 "$WORK/train.log"; exit 1; }
T1=$(now)
tail -2 "$WORK/train.log"

echo "== 3/4 passk eval throughput on $DEVICE"
T2=$(now)
"$PY" -m passk.cli eval --model embedded --task mul1 --problems "$PROBLEMS" --n "$N" \
  --max-new-tokens "$TOKENS" --device "$DEVICE" --dtype "$DTYPE" --no-plots \
  --out "$WORK/eval" > "$WORK/eval.log" 2>&1 || { tail -20 "$WORK/eval.log"; exit 1; }
T3=$(now)
tail -2 "$WORK/eval.log"

echo "== 4/4 verl with vLLM rollouts"
VERL_STATUS=skipped
VERL_REASON=""
T4=$(now); T5=$T4
if [ "$DRY" = 1 ]; then
  VERL_REASON="dry run"
elif ! "$PY" -c 'import vllm' > /dev/null 2>&1; then
  VERL_REASON="vllm does not import here"
else
  T4=$(now)
  if "$PY" tests/integration/verl_cpu/harness.py "$WORK/verl" passk_analytic --vllm \
      > "$WORK/verl.out" 2>&1; then
    VERL_STATUS=passed
  else
    VERL_STATUS=failed; VERL_REASON="see the log tail in the JSON"
  fi
  T5=$(now)
fi
echo "verl: $VERL_STATUS $VERL_REASON"

"$PY" - "$WORK" "$OUT" "$NAME" "$DRY" "$TESTS_RC" "$T0" "$T1" "$T2" "$T3" "$T4" "$T5" \
  "$VERL_STATUS" "$VERL_REASON" "$STEPS" "$PROMPTS" "$N" "$PROBLEMS" "$TOKENS" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path

work, out, name, dry, tests_rc = sys.argv[1:6]
t0, t1, t2, t3, t4, t5 = map(float, sys.argv[6:12])
verl_status, verl_reason = sys.argv[12], sys.argv[13]
steps, prompts, n, problems, tokens = map(int, sys.argv[14:19])
work = Path(work)
suite = ET.parse(work / "cuda_tests.xml").getroot()
suite = suite if suite.tag == "testsuite" else suite[0]
rows = [json.loads(l) for l in (work / "train" / "metrics.jsonl").read_text().splitlines()]
steps_rows = [r for r in rows if "time/step" in r]
report = json.loads((work / "eval" / "eval.json").read_text())
summary = report.get("summary", report)
verl_log = work / "verl" / "passk_analytic.log"
figures = {
    "device": name,
    "dry_run": dry == "1",
    "cuda_tests": {
        "exit_code": int(tests_rc),
        "tests": int(suite.get("tests", 0)),
        "failures": int(suite.get("failures", 0)) + int(suite.get("errors", 0)),
        "skipped": int(suite.get("skipped", 0)),
    },
    "train": {
        "steps": steps,
        "prompts_per_step": prompts,
        "responses_per_prompt": n,
        "wall_s": round(t1 - t0, 1),
        "step_s": [round(r["time/step"], 2) for r in steps_rows],
    },
    "eval": {
        "problems": problems,
        "n": n,
        "max_new_tokens": tokens,
        "wall_s": round(t3 - t2, 1),
        "tokens": summary.get("tokens"),
        "tokens_per_s": summary.get("tokens_per_s"),
    },
    "verl_vllm": {
        "status": verl_status,
        "reason": verl_reason or None,
        "wall_s": round(t5 - t4, 1) if verl_status != "skipped" else None,
        "log_tail": verl_log.read_text(errors="replace")[-3000:] if verl_status == "failed" and verl_log.exists() else None,
    },
}
Path(out).parent.mkdir(parents=True, exist_ok=True)
Path(out).write_text(json.dumps(figures, indent=2) + "\n")
print(json.dumps(figures, indent=2))
print(f"written: {out}")
PY
[ "$TESTS_RC" = 0 ] || { echo "gpu_check.sh: CUDA tests failed (exit $TESTS_RC)" >&2; exit 1; }
