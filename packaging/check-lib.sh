# Sourced by packaging/check.sh and packaging/check-systemd.sh: how a check
# reports. Set `me` before sourcing; `summary` collects what passed, for the
# closing report, and `started` times the whole run.
# shellcheck shell=bash disable=SC2034,SC2154 # me comes from, and started is read by, the sourcing script
started=$SECONDS
summary=()

# Stops the run at the first wrong thing, saying what it was.
fail() {
  echo "$me: FAILED: $*" >&2
  exit 1
}

passed() {
  summary+=("$*")
  echo "$me: ok: $*" >&2
}
