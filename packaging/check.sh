#!/usr/bin/env bash
# Proves the packages work on this (Debian) machine: builds them with
# packaging/build.sh, lists and inspects their contents, installs the .deb,
# verifies the installed unit, runs the INSTALLED binary with the PACKAGED
# config as the packaged service user against the local Docker engine (health,
# a scale to 2 and back, SIGTERM), purges the .deb and checks nothing is left;
# then runs the .rpm's scriptlets for real (install, upgrade with a changed
# config, erase) with rpm's own database in a temporary directory.
#
# CI runs it after the tests; by hand: packaging/check.sh (the build runs as
# you, the rest through sudo when you are not root). It refuses to run where
# docker-connector is already installed, since it ends by removing it. It
# cleans up what it created, on failure too, and nothing else: containers
# only by its own instance label, its own image, users only if it made them.
set -euo pipefail
cd "$(dirname "$0")/.."

me=packaging/check.sh
# shellcheck source=packaging/check-lib.sh
. packaging/check-lib.sh

# --- Build as the calling user (their Rust toolchain), check as root --------

if [ "${1:-}" = --built ]; then
  deb=$2 rpm=$3 rpm_upgrade=$4
else
  packages=$(./packaging/build.sh)
  deb=$(sed -n 1p <<<"$packages")
  rpm=$(sed -n 2p <<<"$packages")
  # A second .rpm, one release higher, whose packaged Rocket.toml differs
  # from the first: only then does an upgrade have to choose between the
  # administrator's copy and the package's (noreplace keeps the former and
  # writes the latter as .rpmnew). Built from the same metadata, with the
  # config asset pointed at a changed copy.
  upgrade_dir="$(dirname "$rpm")/check-upgrade"
  rm -rf "$upgrade_dir" && mkdir -p "$upgrade_dir"
  { cat packaging/Rocket.toml; echo "# marker: the package's config of release 2"; } >"$upgrade_dir/Rocket.toml"
  python3 - "$upgrade_dir/Rocket.toml" >"$upgrade_dir/overwrite.toml" <<'EOF'
import json, sys, tomllib
# TOML's basic strings accept JSON's escapes, so json.dumps writes valid TOML
# for the strings and booleans the asset tables hold.
meta = tomllib.load(open("Cargo.toml", "rb"))["package"]["metadata"]["generate-rpm"]
assets = meta["assets"]
for asset in assets:
    if asset["dest"] == "/etc/docker-connector/Rocket.toml":
        asset["source"] = sys.argv[1]
print('release = "2"')
print("assets = [")
for asset in assets:
    print("  {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in asset.items()) + "},")
print("]")
EOF
  cargo generate-rpm --auto-req builtin --metadata-overwrite "$upgrade_dir/overwrite.toml" -o "$upgrade_dir/" >&2
  rpm_upgrade=$(ls "$upgrade_dir"/docker-connector-*.rpm)
  if [ "$(id -u)" -ne 0 ]; then
    exec sudo -- "$0" --built "$deb" "$rpm" "$rpm_upgrade"
  fi
fi
[ "$(id -u)" -eq 0 ] || fail "the checks install packages and create users: they need root"

# --- Preconditions: nothing of a real installation may be here -------------

# dpkg-query prints a status even for a package that was removed but not
# purged; only "no such package" (or not-installed) is clean.
if [ -n "$(dpkg-query -W -f '${db:Status-Status}' docker-connector 2>/dev/null | grep -v '^not-installed$' || true)" ]; then
  fail "the docker-connector .deb is installed here; this check would purge it"
fi
getent passwd docker-connector >/dev/null && fail "a docker-connector user exists here; this check would delete it"
getent group docker-connector >/dev/null && fail "a docker-connector group exists here; this check would delete it"
for path in /etc/docker-connector /var/lib/docker-connector /usr/bin/docker-connector; do
  [ ! -e "$path" ] || fail "$path exists here; this check would remove it"
done
timeout 10 docker info >/dev/null 2>&1 || fail "no Docker engine answers 'docker info'"
docker_group_existed=no
getent group docker >/dev/null && docker_group_existed=yes

# Tools the checks use, from Debian, when missing: rpm to inspect and install
# the .rpm, a static busybox for the test image (as the tests build theirs),
# curl and jq to talk to the API.
missing=()
command -v rpm >/dev/null || missing+=(rpm)
has_static_busybox || missing+=(busybox-static)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
install_packages "${missing[@]}"

# --- Cleanup, on success and on failure ------------------------------------

# A label value and image tag no one else uses: everything the connector
# starts carries the label, so cleanup can never touch another container.
instance="pkgcheck-$$-$(date +%s)"
image="docker-connector-package-check:$instance"
work=$(mktemp -d /tmp/docker-connector-check.XXXXXX)
# The service user must reach its data directory below this one.
chmod 755 "$work"
rpmdb="$work/rpmdb"
connector_pid=""
image_built=no

cleanup() {
  local status=$?
  set +e
  if [ -n "$connector_pid" ] && kill -0 "$connector_pid" 2>/dev/null; then
    kill -KILL "$connector_pid"
    wait "$connector_pid" 2>/dev/null
  fi
  docker ps -aq --filter "label=docker-connector.instance=$instance" | xargs -r docker rm -f >/dev/null
  [ "$image_built" = no ] || docker rmi "$image" >/dev/null
  # Whatever a failed step left installed: the preconditions showed that
  # none of it was there before this run.
  if dpkg-query -W -f '${db:Status-Status}' docker-connector 2>/dev/null | grep -qv '^not-installed$'; then
    dpkg --purge docker-connector >/dev/null
  fi
  if [ -d "$rpmdb" ] && rpm --dbpath "$rpmdb" -q docker-connector >/dev/null 2>&1; then
    rpm --dbpath "$rpmdb" -e --nodeps docker-connector >/dev/null
  fi
  rm -rf /etc/docker-connector /var/lib/docker-connector
  getent passwd docker-connector >/dev/null && userdel docker-connector
  getent group docker-connector >/dev/null && groupdel docker-connector
  [ "$docker_group_existed" = yes ] || { getent group docker >/dev/null && groupdel docker; }
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then
    echo "$me: FAILED after $((SECONDS - started)) s; cleaned up" >&2
  fi
}
trap cleanup EXIT

# --- The packages' contents ------------------------------------------------

echo "== $deb" >&2
dpkg-deb -c "$deb" >&2
echo "== $rpm" >&2
rpm -qlpv "$rpm" >&2

deb_files=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#')
rpm_files=$(rpm -qlp "$rpm")
for path in /usr/bin/docker-connector /usr/lib/systemd/system/docker-connector.service \
  /etc/docker-connector/Rocket.toml /usr/share/doc/docker-connector/README.md \
  /usr/share/doc/docker-connector/docs/operations.md; do
  grep -qx "$path" <<<"$deb_files" || fail "the .deb lacks $path"
  grep -qx "$path" <<<"$rpm_files" || fail "the .rpm lacks $path"
done
grep -qx /usr/share/doc/docker-connector/copyright <<<"$deb_files" || fail "the .deb lacks its copyright file"
passed "both packages hold the binary, the unit, /etc/docker-connector/Rocket.toml, the README and docs/"

# The config is a conffile (dpkg) and %config(noreplace) (rpm): upgrades
# keep a changed copy.
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/docker-connector/Rocket.toml ||
  fail "the .deb does not list /etc/docker-connector/Rocket.toml as a conffile"
rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm" | grep -qx '/etc/docker-connector/Rocket.toml cn' ||
  fail "the .rpm does not mark /etc/docker-connector/Rocket.toml %config(noreplace)"
passed "the config is a conffile in the .deb and %config(noreplace) in the .rpm"

# Names of docker CLI packages (not group(docker-connector), a requirement).
docker_cli='docker\.io|docker-ce-cli|docker-cli|moby-engine|(^|[ (])docker([ )]|$)'
dpkg-deb -f "$deb" Recommends | grep -Eq "$docker_cli" || fail "the .deb does not recommend a docker CLI"
dpkg-deb -f "$deb" Depends | grep -Eq "$docker_cli" && fail "the .deb depends on a docker CLI; it should only recommend one"
rpm -qp --recommends "$rpm" | grep -Eq "$docker_cli" || fail "the .rpm does not recommend a docker CLI"
rpm -qp --requires "$rpm" | grep -Eq "$docker_cli" && fail "the .rpm requires a docker CLI; it should only recommend one"
passed "both packages recommend a docker CLI and do not depend on one"

# Both packages carry the one stripped binary build.sh made.
mkdir "$work/deb-root"
dpkg-deb -x "$deb" "$work/deb-root"
readelf -S "$work/deb-root/usr/bin/docker-connector" | grep -q '\.symtab' && fail "the packaged binary is not stripped"
rpm_binary_digest=$(rpm -qp --qf '[%{FILENAMES} %{FILEDIGESTS}\n]' "$rpm" | awk '$1 == "/usr/bin/docker-connector" {print $2}')
[ "$(sha256sum <"$work/deb-root/usr/bin/docker-connector" | cut -d' ' -f1)" = "$rpm_binary_digest" ] ||
  fail "the .deb and the .rpm carry different binaries"
passed "one stripped binary, the same in both packages"

# --- The .deb: install ---------------------------------------------------

# Which of the package's directories exist before it does: those that do
# not must be gone again after the purge.
new_dirs=()
while read -r path; do
  [ -e "$path" ] || new_dirs+=("$path")
done < <(dpkg-deb -c "$deb" | awk '$1 ~ /^d/ {print $NF}' | sed 's#^\./#/#; s#/$##' | grep -v '^$')

dpkg -i "$deb" >&2
id -nG docker-connector | tr ' ' '\n' | grep -qx docker || fail "the user docker-connector is not in the docker group"
[ "$(getent passwd docker-connector | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the user docker-connector has a login shell"
[ ! -e /var/lib/docker-connector ] || fail "the .deb created /var/lib/docker-connector (systemd's StateDirectory= should)"
[ "$(stat -c '%U:%G %a' /etc/docker-connector/Rocket.toml)" = "root:docker-connector 640" ] ||
  fail "/etc/docker-connector/Rocket.toml is $(stat -c '%U:%G %a' /etc/docker-connector/Rocket.toml), not root:docker-connector 640"
# debhelper's enable step records the unit for the next boot even where
# systemd is not running.
[ -L /etc/systemd/system/multi-user.target.wants/docker-connector.service ] ||
  fail "dpkg -i did not enable docker-connector.service"
passed "dpkg -i: system user in the docker group, config root:docker-connector 0640, unit enabled"

# systemd-analyze verify loads the unit in a private test-mode manager, so it
# works without systemd as PID 1 (as here): it checks every directive parses,
# that ExecStart= names an executable that exists, and the unit's
# dependencies. It reports bad directives as warnings but still exits 0, so
# any output at all fails the check. The security review grades the
# hardening offline; the threshold (exposure x10) catches a regression.
if command -v systemd-analyze >/dev/null; then
  verify_output=$(systemd-analyze verify /usr/lib/systemd/system/docker-connector.service 2>&1) ||
    fail "systemd-analyze verify: $verify_output"
  [ -z "$verify_output" ] || fail "systemd-analyze verify complained: $verify_output"
  exposure=$(systemd-analyze security --offline=yes --threshold=20 /usr/lib/systemd/system/docker-connector.service 2>&1) ||
    fail "systemd-analyze security: the unit's exposure rose above 2.0: $(tail -n 1 <<<"$exposure")"
  passed "systemd-analyze verify is silent; $(tail -n 1 <<<"$exposure" | sed 's/→ //')"
else
  echo "$me: no systemd-analyze here; the unit is not verified" >&2
fi

# --- The installed binary, packaged config, as the service user ---------

# The test image: a static busybox whose default command sleeps.
build_test_image "$image" "$work/image"
image_built=yes

# What systemd's StateDirectory= would make: a directory of the user's own.
state="$work/state"
install -d -o docker-connector -g docker-connector -m 0700 "$state"

# An exited child stays a zombie until bash reaps it, and kill -0 counts a
# zombie as alive; /proc tells. bash keeps the exit status for `wait` either
# way.
exited() { [ ! -e "/proc/$1" ] || grep -qs '^State:.*Z' "/proc/$1/status"; }

# launch CONFIG: starts the installed binary with CONFIG as the service user
# and waits until it serves; sets connector_pid and port. setpriv with
# --init-groups takes the supplementary groups from /etc/group, so the docker
# socket is reached through the user's docker membership, as under systemd.
# Only port (0: any free one), data file and instance are overridden;
# DOCKER_CONFIG is what the unit sets too.
launch() {
  setpriv --reuid docker-connector --regid docker-connector --init-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    ROCKET_PORT=0 ROCKET_DATA_FILE="$state/services.json" ROCKET_INSTANCE="$instance" \
    DOCKER_CONFIG="$state/docker" \
    /usr/bin/docker-connector --config "$1" \
    </dev/null >"$work/connector.log" 2>&1 &
  connector_pid=$!
  # "docker-connector listening on ADDRESS:PORT (...)" once it serves.
  port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/.*docker-connector listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/connector.log" | head -n 1)
    [ -n "$port" ] && return 0
    exited "$connector_pid" && fail "/usr/bin/docker-connector --config $1 exited at start: $(cat "$work/connector.log")"
    sleep 0.1
  done
  fail "/usr/bin/docker-connector --config $1 did not announce its port in 20 s: $(cat "$work/connector.log")"
}

# terminate: SIGTERM, as systemctl stop sends, and the exit status. The unit
# gives the connector TimeoutStopSec=45 before SIGKILL; so does this.
terminate() {
  local status=0
  kill -TERM "$connector_pid"
  for _ in $(seq 450); do
    exited "$connector_pid" && break
    sleep 0.1
  done
  exited "$connector_pid" ||
    fail "the connector did not exit within 45 s of SIGTERM: $(tail -n 20 "$work/connector.log")"
  wait "$connector_pid" || status=$?
  connector_pid=""
  return "$status"
}

# Every optional key of the packaged config, uncommented, is accepted as the
# documented default (an auth_token needs a value; the empty one shown is
# refused on purpose, so an uncommented placeholder cannot go unnoticed).
sed -E 's/^# ([a-z_]+ = .*)$/\1/; s/^# (\[default\.shutdown\])$/\1/' /etc/docker-connector/Rocket.toml |
  sed 's/^auth_token = ""$/auth_token = "package-check-token-0123456789"/' >"$work/all-keys.toml"
chmod 644 "$work/all-keys.toml"
launch "$work/all-keys.toml"
terminate || fail "with every key uncommented the connector exited with $? after SIGTERM"
passed "the packaged config with every optional key uncommented is accepted"

launch /etc/docker-connector/Rocket.toml
passed "/usr/bin/docker-connector --config /etc/docker-connector/Rocket.toml runs as docker-connector (port $port)"

api="http://127.0.0.1:$port"
# call METHOD PATH [JSON]: prints the body, then the status on its own line.
call() {
  curl -sS -X "$1" -H 'content-type: application/json' ${3:+--data "$3"} -w '\n%{http_code}' "$api$2" ||
    fail "$1 $2: no answer from the connector: $(tail -n 20 "$work/connector.log")"
}
expect() {
  local want=$1 what=$2 reply=$3
  [ "$(status_of "$reply")" = "$want" ] || fail "$what answered $(status_of "$reply"), not $want: $(body "$reply")"
}
ours() { docker ps -q --filter "label=docker-connector.instance=$instance" | wc -l; }

reply=$(call GET /health)
expect 200 "GET /health" "$reply"
[ "$(body "$reply" | jq -r .status)" = pass ] || fail "GET /health: $(body "$reply")"
passed "GET /health is 200 with \"status\": \"pass\" (docker reached as the service user)"

reply=$(call POST /service "{\"name\": \"pkgcheck\", \"image\": \"$image\"}")
expect 201 "POST /service" "$reply"
reply=$(call POST /service/pkgcheck/scale '{"number": 2}')
expect 200 "scale to 2" "$reply"
[ "$(body "$reply" | jq .running_resources)" = 2 ] || fail "scale to 2: $(body "$reply")"
[ "$(ours)" = 2 ] || fail "scale to 2: docker ps shows $(ours) containers of instance $instance"
[ "$(stat -c %U "$state/services.json")" = docker-connector ] || fail "the data file is not the service user's"
passed "a service defined and scaled to 2: running_resources 2, docker ps shows 2"

reply=$(call POST /service/pkgcheck/scale '{"number": 0}')
expect 200 "scale to 0" "$reply"
[ "$(body "$reply" | jq .running_resources)" = 0 ] || fail "scale to 0: $(body "$reply")"
reply=$(call DELETE /service/pkgcheck)
expect 204 "DELETE /service/pkgcheck" "$reply"
left=$(docker ps -aq --filter "label=docker-connector.instance=$instance" | wc -l)
[ "$left" = 0 ] || fail "after scale to 0 and delete, docker ps -a shows $left containers"
passed "scaled to 0 and deleted: no container left"

exit_status=0
terminate || exit_status=$?
[ "$exit_status" -eq 0 ] || fail "after SIGTERM the connector exited with $exit_status: $(tail -n 20 "$work/connector.log")"
passed "SIGTERM: the connector exits 0"

# --- The .deb: purge -----------------------------------------------------

installed_files=$(dpkg -L docker-connector | while read -r path; do [ -d "$path" ] || echo "$path"; done)
# What systemd would have made; created here so purge has to remove it.
install -d -o docker-connector -g docker-connector -m 0700 /var/lib/docker-connector
touch /var/lib/docker-connector/services.json
dpkg --purge docker-connector >&2
while read -r path; do
  [ ! -e "$path" ] || fail "dpkg --purge left $path"
done <<<"$installed_files"
for path in "${new_dirs[@]}" /etc/docker-connector /var/lib/docker-connector; do
  [ ! -e "$path" ] || fail "dpkg --purge left $path"
done
getent passwd docker-connector >/dev/null && fail "dpkg --purge left the user docker-connector"
getent group docker-connector >/dev/null && fail "dpkg --purge left the group docker-connector"
getent group docker >/dev/null || fail "dpkg --purge removed the docker group"
leftovers=$(find /etc/systemd /var/lib/systemd -name '*docker-connector*' 2>/dev/null || true)
[ -z "$leftovers" ] || fail "dpkg --purge left systemd links or state: $leftovers"
dpkg-statoverride --list | grep -q docker-connector && fail "dpkg --purge left a statoverride"
[ -z "$(docker ps -aq --filter "label=docker-connector.instance=$instance")" ] ||
  fail "a container of instance $instance exists after the purge"
passed "dpkg --purge: no file, directory, user, group, systemd link or container left"

# --- The .rpm's scriptlets, for real -----------------------------------

# rpm's own database under the temporary directory: this Debian host's rpm
# database stays untouched. --nodeps: Fedora's package names (shadow-utils,
# libc.so.6) mean nothing to Debian's rpm.
rpm_() { rpm --dbpath "$rpmdb" "$@"; }
mkdir "$rpmdb"
rpm_ --initdb
rpm_ -i --nodeps "$rpm" 2>"$work/rpm.err" || fail "rpm -i: $(cat "$work/rpm.err")"
# rpm warns, and falls back to root, when a file's group does not exist yet.
grep -q 'does not exist' "$work/rpm.err" && fail "rpm -i: $(cat "$work/rpm.err")"
id -nG docker-connector | tr ' ' '\n' | grep -qx docker || fail "rpm %pre: the user docker-connector is not in the docker group"
for path in /usr/bin/docker-connector /usr/lib/systemd/system/docker-connector.service /usr/share/doc/docker-connector/README.md /usr/share/doc/docker-connector/docs/operations.md; do
  [ -f "$path" ] || fail "rpm -i did not install $path"
done
[ "$(stat -c '%U:%G %a' /etc/docker-connector/Rocket.toml)" = "root:docker-connector 640" ] ||
  fail "rpm -i: /etc/docker-connector/Rocket.toml is $(stat -c '%U:%G %a' /etc/docker-connector/Rocket.toml)"
if command -v systemctl >/dev/null; then
  [ -L /etc/systemd/system/multi-user.target.wants/docker-connector.service ] ||
    fail "rpm %post did not enable docker-connector.service"
fi
passed "rpm -i: %pre made the user, files in place, config root:docker-connector 0640, %post enabled the unit"

echo 'port = 7999 # changed by packaging/check.sh' >>/etc/docker-connector/Rocket.toml
changed=$(sha256sum </etc/docker-connector/Rocket.toml)
rpm_ -U --nodeps "$rpm_upgrade" 2>"$work/rpm.err" || fail "rpm -U: $(cat "$work/rpm.err")"
[ "$(rpm_ -q --qf '%{RELEASE}' docker-connector)" = 2 ] || fail "rpm -U did not install release 2"
[ "$(sha256sum </etc/docker-connector/Rocket.toml)" = "$changed" ] || fail "rpm -U overwrote the changed config"
grep -q 'marker: the package.s config of release 2' /etc/docker-connector/Rocket.toml.rpmnew ||
  fail "rpm -U did not put the new package's config in Rocket.toml.rpmnew"
getent passwd docker-connector >/dev/null || fail "rpm -U lost the user docker-connector"
[ -L /etc/systemd/system/multi-user.target.wants/docker-connector.service ] || ! command -v systemctl >/dev/null ||
  fail "rpm -U disabled docker-connector.service"
passed "rpm -U: the changed config kept, the new one beside it as .rpmnew, user and enablement kept"

rpm_ -e docker-connector 2>"$work/rpm.err" || fail "rpm -e: $(cat "$work/rpm.err")"
for path in /usr/bin/docker-connector /usr/lib/systemd/system/docker-connector.service \
  /usr/share/doc/docker-connector /etc/docker-connector/Rocket.toml \
  /etc/systemd/system/multi-user.target.wants/docker-connector.service; do
  [ ! -e "$path" ] && [ ! -L "$path" ] || fail "rpm -e left $path"
done
# rpm has no purge: a changed config is saved, the user stays (and so would
# /var/lib/docker-connector).
[ -f /etc/docker-connector/Rocket.toml.rpmsave ] || fail "rpm -e did not save the changed config as Rocket.toml.rpmsave"
getent passwd docker-connector >/dev/null || fail "rpm -e removed the user docker-connector"
passed "rpm -e: files and enablement gone; the changed config saved as .rpmsave, the user kept (rpm has no purge)"

elapsed=$((SECONDS - started))
echo
echo "== $me: all checks passed in ${elapsed} s =="
printf -- '- %s\n' "${summary[@]}"
