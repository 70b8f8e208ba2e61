#!/usr/bin/env bash
# Builds the .deb (target/debian/) and the .rpm (target/generate-rpm/) from
# this checkout, installing the pinned packaging tools first when they are
# missing or at another version. Both packages carry the same stripped
# release binary. The package metadata is in Cargo.toml
# ([package.metadata.deb], [package.metadata.generate-rpm]).
# Prints the two package paths, one per line, last (on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so that a new release of either tool cannot change what the packages
# contain (maintainer-script snippets, paths) without a review here. Both
# build with the toolchain this project uses (cargo-deb 3.8.0 needs Rust 1.85).
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

# `cargo install` skips a crate that is already at the requested version, but
# only after updating the registry index; asking the installed binary first
# keeps a repeated run offline and fast.
ensure_tool() {
  local crate=$1 version=$2 installed
  installed=$(cargo "${crate#cargo-}" --version 2>/dev/null | awk '{print $2}') || true
  if [ "$installed" != "$version" ]; then
    echo "packaging/build.sh: installing $crate $version (found: ${installed:-none})" >&2
    # --locked: the tool's own Cargo.lock, as its release was tested.
    cargo install --locked --version "$version" "$crate"
  fi
}
ensure_tool cargo-deb "$CARGO_DEB_VERSION"
ensure_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"

# Where cargo puts its output (CARGO_TARGET_DIR or a config may move it).
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
binary="$target_dir/release/docker-connector"

cargo build --release --locked
# Strip once, in place, so the .deb and the .rpm ship the same bytes:
# cargo-generate-rpm does not strip, and cargo-deb is told not to below.
# Cargo judges freshness by timestamps, so it keeps the stripped binary.
strip --strip-unneeded "$binary"

# Old packages of this name would make the paths below ambiguous.
rm -f "$target_dir"/debian/docker-connector_*.deb "$target_dir"/generate-rpm/docker-connector-*.rpm
# --no-build: package exactly the binary built and stripped above. It prints
# the package's path; stdout is kept for the two paths at the end.
cargo deb --no-build --no-strip >&2
# builtin: the shared-library requirements (libc) from ldd, the same on any
# build host; the default would use /usr/lib/rpm/find-requires when Debian's
# rpm package happens to be installed.
cargo generate-rpm --auto-req builtin >&2

# One package of each kind, whatever the version in their names.
shopt -s nullglob
debs=("$target_dir"/debian/docker-connector_*.deb)
rpms=("$target_dir"/generate-rpm/docker-connector-*.rpm)
if [ ${#debs[@]} -ne 1 ] || [ ${#rpms[@]} -ne 1 ]; then
  echo "packaging/build.sh: expected one .deb and one .rpm, found: ${debs[*]} ${rpms[*]}" >&2
  exit 1
fi
echo "${debs[0]}"
echo "${rpms[0]}"
