#!/usr/bin/env bash
# Installs the containerd releases the tests run on, side by side, without
# touching the system's apt sources or its installed packages:
#   2.1  Debian unstable's (sid) containerd 2.1.x: the default runtime of the tests
#   1.7  Debian trixie's containerd 1.7.x: for MIRRA_CONTAINERD=1.7
# Each is `apt-get download`ed through a private sources list and lists
# directory (Dir::Etc::SourceList, Dir::State::Lists, Dir::Cache), so the
# system's apt stays on bookworm, then unpacked with `dpkg -x` into
# $MIRRA_CONTAINERD_CACHE/<series>/ (default /var/cache/mirra/containerd). The
# binaries are static Go builds and run on bookworm. Bookworm's own 1.6 comes
# from apt as a normal package (hack/setup.sh). Idempotent: a series whose
# binaries are already unpacked is left alone.
set -euo pipefail

cache="${MIRRA_CONTAINERD_CACHE:-/var/cache/mirra/containerd}"
# series -> Debian suite that carries it
declare -A suites=([2.1]=sid [1.7]=trixie)

needed=()
for series in "${!suites[@]}"; do
  [ -x "$cache/$series/usr/bin/containerd" ] && [ -x "$cache/$series/usr/bin/ctr" ] || needed+=("$series")
done
[ "${#needed[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup: containerd ${needed[*]} missing under $cache; run npm run setup as root once" >&2
  exit 1
fi

apt_dir="$cache/.apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
: >"$apt_dir/sources.list"
for suite in sid trixie; do
  echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" >>"$apt_dir/sources.list"
done
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o APT::Sandbox::User=root
)
echo "setup: fetching the package lists of Debian sid and trixie (private lists, for containerd ${needed[*]})" >&2
apt-get "${apt_opts[@]}" update -qq >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for series in "${needed[@]}"; do
  suite="${suites[$series]}"
  # The newest version of this series that the suite carries, e.g. 2.1.9+ds1-5.
  version=$(apt-cache "${apt_opts[@]}" madison containerd | awk -v suite="$suite" -v series="$series" '
    $0 ~ "/debian " suite "/" && index($3, series ".") == 1 { print $3; exit }')
  if [ -z "$version" ]; then
    echo "setup: Debian $suite has no containerd $series.x; set MIRRA_CONTAINERD to another series (2.1, 1.7, 1.6)" >&2
    exit 1
  fi
  echo "setup: installing containerd $version (Debian $suite) into $cache/$series" >&2
  (cd "$work" && apt-get "${apt_opts[@]}" download -qq "containerd=$version" >&2)
  rm -rf "$cache/$series.new"
  dpkg -x "$work"/containerd_*.deb "$cache/$series.new"
  rm -f "$work"/containerd_*.deb
  rm -rf "$cache/$series"
  mv "$cache/$series.new" "$cache/$series"
done
