# Sourced by packaging/check.sh and packaging/check-systemd.sh: how a check
# reports, and what both need around it. Set `me` before sourcing; `summary`
# collects what passed, for the closing report, and `started` times the
# whole run.
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

# Whether /bin/busybox is a static one, which the test image is made of (no
# registry is reachable, so the image is built locally, as the tests do).
has_static_busybox() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }

# Installs the named Debian packages; nothing when none is named.
install_packages() {
  [ $# -gt 0 ] || return 0
  echo "$me: installing $*" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# build_test_image NAME DIR: a local image of the static busybox whose
# default command sleeps and exits at SIGTERM (a plain sleep as PID 1 ignores
# it, and the connector's graceful stop would wait out the 10 s grace),
# assembled in DIR.
build_test_image() {
  local name=$1 dir=$2
  mkdir -p "$dir/bin"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in sh sleep; do ln -s busybox "$dir/bin/$applet"; done
  tar -C "$dir" -c . | docker import --change 'CMD ["sh", "-c", "trap '\''exit 0'\'' TERM; sleep 86400 & wait"]' --change 'ENV PATH=/bin' - "$name" >/dev/null
}

# A reply of the scripts' call(): the body, then the status on its own line.
status_of() { tail -n 1 <<<"$1"; }
body() { sed '$d' <<<"$1"; }
