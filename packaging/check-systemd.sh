#!/usr/bin/env bash
# Checks the packages under a real systemd, which packaging/check.sh cannot
# do where PID 1 is not systemd (CI): a Debian bookworm root made with
# debootstrap runs as a container with systemd as its PID 1, and talks to
# this machine's Docker engine through its socket. In there: the .deb's
# maintainer scripts enable and start the unit, the hardened unit serves
# /health and a scale, `systemctl stop` lets an in-flight scale finish and
# leaves containers running, Restart=on-failure restarts, an upgrade
# restarts (but not a disabled unit) and keeps the changed config, remove
# stops and purge forgets; then the .rpm's scriptlets do the same with rpm.
#
# Needs root, a Docker engine that can run a container with most
# capabilities, and deb.debian.org (or the mirror in DEBIAN_MIRROR). Takes
# about two minutes, most of it debootstrap. Cleans up what it created.
set -euo pipefail
cd "$(dirname "$0")/.."

me=packaging/check-systemd.sh
# shellcheck source=packaging/check-lib.sh
. packaging/check-lib.sh

[ "$(id -u)" -eq 0 ] || fail "debootstrap and the container need root"
timeout 10 docker info >/dev/null 2>&1 || fail "no Docker engine answers 'docker info'"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v jq >/dev/null || missing+=(jq)
has_static_busybox || missing+=(busybox-static)
install_packages "${missing[@]}"
# The host's docker CLI goes into the container; Debian has no package with
# the CLI alone. It must need nothing beyond libc, which bookworm has.
docker_cli=$(command -v docker)
if ldd "$docker_cli" 2>/dev/null | grep -v -E 'linux-vdso|libc\.so|ld-linux' | grep -q '=>'; then
  fail "$docker_cli needs more shared libraries than libc; cannot copy it into the container"
fi

packages=$(./packaging/build.sh)
deb=$(sed -n 1p <<<"$packages")
rpm=$(sed -n 2p <<<"$packages")

# Everything made here carries this run's name: the container, the images,
# and (as the instance label of the connector inside) the containers it runs.
run="syscheck-$$-$(date +%s)"
box="docker-connector-$run"
box_image="docker-connector-systemd:$run"
app_image="docker-connector-package-check:$run"
work=$(mktemp -d /tmp/docker-connector-systemd.XXXXXX)
images=()

cleanup() {
  local status=$?
  set +e
  docker rm -f "$box" >/dev/null 2>&1
  docker ps -aq --filter "label=docker-connector.instance=$run" | xargs -r docker rm -f >/dev/null
  [ ${#images[@]} -eq 0 ] || docker rmi "${images[@]}" >/dev/null
  rm -rf "$work"
  [ "$status" -eq 0 ] || echo "$me: FAILED after $((SECONDS - started)) s; cleaned up" >&2
}
trap cleanup EXIT

# --- A bookworm root with systemd -----------------------------------------

root="$work/root"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,jq,rpm \
  bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
  fail "debootstrap: $(tail -n 20 "$work/debootstrap.log")"
# The socket is bind-mounted with the host's group id: a docker group with
# that id before the package is installed makes it usable for the service.
chroot "$root" groupadd --system --gid "$(stat -c %g /var/run/docker.sock)" docker
cp "$docker_cli" "$root/usr/bin/docker"
cp "$deb" "$rpm" "$root/root/"
# An empty machine-id makes systemd generate one at boot, as on a new host.
: >"$root/etc/machine-id"
tar -C "$root" -c . | docker import - "$box_image" >/dev/null
images+=("$box_image")
rm -rf "$root"

# --- systemd as PID 1 in a container --------------------------------------

# systemd needs most capabilities (mounts for the unit's sandbox above all).
# --privileged asks for all of them; where this machine's own bounding set
# lacks some (a nested engine), ask for all but those instead.
missing_caps=$(python3 - <<'EOF'
names = """chown dac_override dac_read_search fowner fsetid kill setgid setuid
setpcap linux_immutable net_bind_service net_broadcast net_admin net_raw
ipc_lock ipc_owner sys_module sys_rawio sys_chroot sys_ptrace sys_pacct
sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease
audit_write audit_control setfcap mac_override mac_admin syslog wake_alarm
block_suspend audit_read perfmon bpf checkpoint_restore""".split()
bounding = next(int(line.split()[1], 16) for line in open("/proc/self/status") if line.startswith("CapBnd:"))
print(" ".join(n.upper() for i, n in enumerate(names) if not bounding >> i & 1))
EOF
)
if [ -z "$missing_caps" ]; then
  privileges=(--privileged)
else
  privileges=(--cap-add ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined)
  for cap in $missing_caps; do privileges+=(--cap-drop "$cap"); done
fi
# cgroup v1 (as on the machine this was written on): systemd needs the
# host's hierarchy writable. cgroup v2: a private cgroup namespace, which
# --privileged mounts writable (not tried here).
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  cgroups=(--cgroupns=private)
else
  cgroups=(--cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)
fi
docker run -d --name "$box" "${privileges[@]}" "${cgroups[@]}" \
  --tmpfs /run --tmpfs /run/lock -v /var/run/docker.sock:/var/run/docker.sock \
  -e container=docker "$box_image" /sbin/init >/dev/null
inside() { docker exec "$box" "$@"; }
# Until systemd has its bus up, systemctl cannot even ask; then --wait
# returns once booting is over.
for _ in $(seq 90); do
  state=$(timeout 60 docker exec "$box" systemctl is-system-running --wait 2>&1) || true
  case "$state" in
    running | degraded) break ;;
  esac
  sleep 1
done
case "$state" in
  running | degraded) ;;
  *) fail "systemd did not boot in the container ($state): $(docker logs "$box" 2>&1 | tail -n 20)" ;;
esac
passed "systemd boots as PID 1 in a bookworm container ($state)"

# The test image, on the host's engine: a static busybox that sleeps.
build_test_image "$app_image" "$work/image"
images+=("$app_image")

# --- The .deb ---------------------------------------------------------------

unit=docker-connector.service
api=http://127.0.0.1:7051
# curl inside the container: prints the body, then the status on its own line.
# The token the drop-in below hands to the service as a systemd credential.
token="check-systemd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
call() {
  inside curl -sS -X "$1" -H 'content-type: application/json' -H "authorization: Bearer $token" ${3:+--data "$3"} -w '\n%{http_code}' "$api$2" ||
    fail "$1 $2: no answer: $(inside journalctl -u "$unit" --no-pager | tail -n 20)"
}
ours() { docker ps -q --filter "label=docker-connector.instance=$run" | wc -l; }
main_pid() { inside systemctl show -p MainPID --value "$unit"; }
# Waits up to 10 s for the unit to be active and answer /health.
wait_serving() {
  for _ in $(seq 100); do
    inside curl -sf -o /dev/null "$api/health" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the service does not answer: $(inside systemctl status "$unit" --no-pager 2>&1 | tail -n 20)
$(inside journalctl -u "$unit" --no-pager 2>&1 | tail -n 15)"
}

inside dpkg -i "/root/$(basename "$deb")" >&2
[ "$(inside systemctl is-enabled "$unit")" = enabled ] || fail "dpkg -i did not enable the unit"
[ "$(inside systemctl is-active "$unit")" = active ] || fail "dpkg -i did not start the unit: $(inside systemctl status "$unit" --no-pager)"
passed "dpkg -i enables and starts docker-connector.service"

# A drop-in, as an administrator would make with `systemctl edit`: this
# run's own instance label, so nothing else on the engine is touched; a
# token from a tokens_file beside Rocket.toml, as docs/operations.md shows
# (root's, readable by the service's group); and the audit log in the
# unit's LogsDirectory. (LoadCredential= could not be checked here: systemd
# 252 in this container left the service user unable to open its
# credentials directory.)
inside sh -c "printf '[checker]\ntoken = \"$token\"\nscopes = [\"read\", \"scale\", \"write\"]\n' >/etc/docker-connector/tokens.toml && chown root:docker-connector /etc/docker-connector/tokens.toml && chmod 640 /etc/docker-connector/tokens.toml"
dropin() {
  inside sh -c "mkdir -p /etc/systemd/system/$unit.d && printf '[Service]\nEnvironment=ROCKET_INSTANCE=$run\n$1' >/etc/systemd/system/$unit.d/instance.conf"
}
dropin 'Environment=ROCKET_TOKENS_FILE=/etc/docker-connector/tokens.toml\nEnvironment=ROCKET_AUDIT_LOG=/var/log/docker-connector/audit.log\n'
inside systemctl daemon-reload
inside systemctl restart "$unit"
wait_serving
reply=$(call GET /health)
[ "$(status_of "$reply")" = 200 ] && [ "$(body "$reply" | jq -r .status)" = pass ] || fail "GET /health: $reply"
[ "$(inside stat -c '%U %a' /var/lib/docker-connector)" = "docker-connector 700" ] ||
  fail "StateDirectory: /var/lib/docker-connector is $(inside stat -c '%U %a' /var/lib/docker-connector)"
passed "under the hardened unit: /health passes (docker socket reached), /var/lib/docker-connector is the user's, 0700"

reply=$(call POST /service "{\"name\": \"web\", \"image\": \"$app_image\"}")
[ "$(status_of "$reply")" = 201 ] || fail "POST /service: $reply"
reply=$(call POST /service/web/scale '{"number": 3}')
[ "$(body "$reply" | jq .running_resources)" = 3 ] || fail "scale to 3: $reply"
[ "$(ours)" = 3 ] || fail "scale to 3: docker ps shows $(ours)"
passed "a scale to 3 through the service: 3 containers run"

# The token came from the credential (root-only file, read by systemd), so
# a request without it is refused; both writes and the refusal are in the
# audit log, by the token's name and never the token.
[ "$(status_of "$(inside curl -sS -w '\n%{http_code}' "$api/service")")" = 401 ] ||
  fail "GET /service without the token was not refused"
audit=$(inside cat /var/log/docker-connector/audit.log)
[ "$(printf '%s\n' "$audit" | jq -r 'select(.token == "checker") | .method + " " + .path' | tr '\n' ,)" = "POST /service,POST /service/web/scale," ] &&
  [ "$(printf '%s\n' "$audit" | jq -r 'select(.outcome == "refused") | .status')" = 401 ] ||
  fail "audit log: $audit"
case "$audit" in *"$token"*) fail "the audit log holds the token" ;; esac
[ "$(inside stat -c '%U %a' /var/log/docker-connector)" = "docker-connector 750" ] ||
  fail "LogsDirectory: /var/log/docker-connector is $(inside stat -c '%U %a' /var/log/docker-connector)"
passed "a tokens_file guards the API; the audit log in LogsDirectory has both writes and the refusal, no token"

# A scale in flight when systemd stops the service: it is answered, the
# service exits 0 (SIGTERM to the connector alone, KillMode=mixed), and no
# container stops.
inside sh -c "curl -sS -H 'content-type: application/json' -H 'authorization: Bearer $token' -d '{\"number\": 6}' -w '\n%{http_code}' $api/service/web/scale >/tmp/inflight 2>&1 &"
sleep 0.3
inside systemctl stop "$unit"
inflight=$(inside cat /tmp/inflight)
[ "$(status_of "$inflight")" = 200 ] && [ "$(body "$inflight" | jq .running_resources)" = 6 ] ||
  fail "the scale in flight during systemctl stop: $inflight"
[ "$(inside systemctl show -p Result --value "$unit")" = success ] &&
  [ "$(inside systemctl show -p ExecMainStatus --value "$unit")" = 0 ] ||
  fail "systemctl stop: $(inside systemctl show -p Result -p ExecMainStatus "$unit")"
[ "$(ours)" = 6 ] || fail "after systemctl stop, docker ps shows $(ours) containers, not 6"
passed "systemctl stop: the in-flight scale to 6 answered 200, exit status 0, all 6 containers still run"

inside systemctl start "$unit"
wait_serving
before=$(main_pid)
inside sh -c "kill -KILL $before"
# RestartSec=5.
for _ in $(seq 150); do
  [ "$(inside systemctl is-active "$unit")" = active ] && [ "$(main_pid)" != "$before" ] && [ "$(main_pid)" != 0 ] && break
  sleep 0.1
done
[ "$(inside systemctl show -p NRestarts --value "$unit")" = 1 ] || fail "Restart=on-failure: no restart after SIGKILL"
wait_serving
passed "Restart=on-failure: a killed connector is back within RestartSec"

verify=$(inside systemd-analyze verify "$unit" 2>&1) && [ -z "$verify" ] || fail "systemd-analyze verify: $verify"
inside systemd-analyze security --no-pager "$unit" >"$work/security.txt" 2>&1 || true
exposure=$(grep 'Overall exposure' "$work/security.txt" | sed 's/.*: //')
passed "systemd-analyze verify is silent; security: $exposure"

# Upgrade (the same package again runs the upgrade paths): restarts, keeps
# a changed config.
inside sh -c 'echo "# changed by check-systemd" >>/etc/docker-connector/Rocket.toml'
before=$(main_pid)
inside dpkg -i "/root/$(basename "$deb")" >/dev/null
wait_serving
[ "$(main_pid)" != "$before" ] || fail "dpkg -i over an installed package did not restart the service"
inside grep -q 'changed by check-systemd' /etc/docker-connector/Rocket.toml || fail "the upgrade replaced the changed config"
inside systemctl disable --now "$unit" 2>/dev/null
inside dpkg -i "/root/$(basename "$deb")" >/dev/null 2>&1
[ "$(inside systemctl is-active "$unit")" != active ] || fail "an upgrade started a unit the administrator had disabled"
inside systemctl enable --now "$unit" 2>/dev/null
wait_serving
passed "upgrade: restarts the service, keeps the changed config, leaves a disabled unit stopped"

inside dpkg -r docker-connector >/dev/null
[ "$(inside systemctl is-active "$unit")" != active ] || fail "dpkg -r did not stop the service"
inside id docker-connector >/dev/null || fail "dpkg -r removed the user"
inside test -f /var/lib/docker-connector/services.json || fail "dpkg -r removed the definitions"
[ "$(ours)" = 6 ] || fail "after dpkg -r, docker ps shows $(ours) containers, not 6"
# The tokens file is the administrator's, not the package's: gone before
# the purge, and the drop-in (which rpm below runs with) no longer names it.
inside rm /etc/docker-connector/tokens.toml
dropin ''
inside systemctl daemon-reload
inside dpkg --purge docker-connector >/dev/null
inside id docker-connector >/dev/null 2>&1 && fail "dpkg --purge left the user"
inside test -e /var/lib/docker-connector && fail "dpkg --purge left /var/lib/docker-connector"
inside test -e /var/log/docker-connector && fail "dpkg --purge left /var/log/docker-connector"
inside test -e /etc/docker-connector && fail "dpkg --purge left /etc/docker-connector"
[ "$(inside sh -c 'systemctl list-unit-files docker-connector.service | grep -c docker-connector' || true)" = 0 ] ||
  fail "dpkg --purge left the unit known to systemd"
passed "dpkg -r: stopped, user and definitions kept; dpkg --purge: user, data, config and unit gone; containers untouched"

# --- The .rpm, with rpm's scriptlets under systemd --------------------------

# The drop-in with this run's instance is still there: rpm leaves it alone.
inside rpm -i --nodeps "/root/$(basename "$rpm")" >&2
[ "$(inside systemctl is-enabled "$unit")" = enabled ] && [ "$(inside systemctl is-active "$unit")" = active ] ||
  fail "rpm -i: $(inside systemctl status "$unit" --no-pager 2>&1 | tail -n 5)"
wait_serving
before=$(main_pid)
# Reinstalling runs the upgrade scriptlets ($1=2 in %post, 1 in %preun and
# %postun of the replaced copy).
inside rpm -U --replacepkgs --nodeps "/root/$(basename "$rpm")" >&2
wait_serving
[ "$(main_pid)" != "$before" ] || fail "rpm -U did not restart the service"
inside rpm -e docker-connector >&2
[ "$(inside systemctl is-active "$unit")" != active ] || fail "rpm -e did not stop the service"
inside test -e /usr/bin/docker-connector && fail "rpm -e left /usr/bin/docker-connector"
[ "$(inside sh -c 'systemctl list-unit-files docker-connector.service | grep -c docker-connector' || true)" = 0 ] ||
  fail "rpm -e left the unit known to systemd"
inside id docker-connector >/dev/null || fail "rpm -e removed the user (rpm keeps it)"
passed "rpm: -i enables and starts, -U restarts, -e stops and disables and keeps the user"

echo "== journalctl -u $unit (last lines) ==" >&2
inside journalctl -u "$unit" --no-pager | tail -n 12 >&2
echo "== systemd-analyze security $unit ==" >&2
cat "$work/security.txt" >&2

echo
echo "== $me: all checks passed in $((SECONDS - started)) s =="
printf -- '- %s\n' "${summary[@]}"
