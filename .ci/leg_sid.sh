#!/usr/bin/env bash
# CI leg 2: the whole suite on Debian sid's QGIS (3.44 today: Python 3.14, numpy 2.x, GDAL 3.1x), in a
# chroot made with `debootstrap --variant=minbase` from this machine's own Debian mirror. When sid cannot
# be installed today (debootstrap, apt or pip fails) the leg says so and uses trixie (QGIS 3.40) instead.
# CI_CHROOT_SUITES (optional): the suites to try in order, default "sid trixie".
# Root only. Nothing is kept: the chroot lives in a temporary folder, unmounted and deleted on any exit.
# CI_VERSIONS_FILE (optional): where to write the suite and versions tested.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PACKAGES=(python3-qgis python3-gdal gdal-bin qgis python3-venv python3-pip
          git e2fsprogs)  # the tests: git ls-files (packaging), chattr (an unwritable folder as root)
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
WORK=$(mktemp -d /var/tmp/ci-chroot.XXXXXX)
ROOT=$WORK/root

say() { echo "=== [chroot leg] $*"; }

host_mirror() {
  # The URI apt uses here for this release (deb822 .sources or one-line .list), so the chroot needs
  # no other host than the ones CI already reaches.
  local codename m
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v RS= -v c="$codename" '{
        uri = ""; ok = 0; n = split($0, lines, "\n")
        for (i = 1; i <= n; i++) {
          k = split(lines[i], w, /[ \t]+/)
          if (w[1] == "URIs:") uri = w[2]
          if (w[1] == "Suites:") for (j = 2; j <= k; j++) if (w[j] == c) ok = 1
        }
        if (ok && uri != "") { print uri; exit }
      }')
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v c="$codename" '
        $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == c) { print $i; exit } }')
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

mount_all() {
  mount -t proc proc "$ROOT/proc" &&
    mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" &&
    mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys"
}

unmount_all() {
  local d
  for d in sys dev proc; do
    if mountpoint -q "$ROOT/$d"; then umount -R "$ROOT/$d" || umount -R -l "$ROOT/$d"; fi
  done
}

cleanup() {
  local rc=$? t0=$SECONDS
  set +e
  unmount_all
  rm -rf --one-file-system "$WORK"  # --one-file-system: never into a mount that survived
  say "chroot unmounted and deleted in $((SECONDS - t0)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
     "CI=${CI:-}" DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
     PIP_CERT=/etc/ssl/host-ca.crt SSL_CERT_FILE=/etc/ssl/host-ca.crt REQUESTS_CA_BUNDLE=/etc/ssl/host-ca.crt)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [ -n "${!v:-}" ]; then ENV+=("$v=${!v}"); fi
done

in_root() { chroot "$ROOT" /usr/bin/env -i "${ENV[@]}" "$@"; }

quiet() {  # run "$@" into $WORK/$1.log; show its end only if it fails
  local name=$1
  shift
  "$@" > "$WORK/$name.log" 2>&1 || { local rc=$?; tail -n 40 "$WORK/$name.log"; return "$rc"; }
}

copy_repo() {
  if git -C "$REPO" rev-parse --git-dir > /dev/null 2>&1; then
    # A clone, so that git works in there (the packaging tests list tracked files), with this working
    # tree's tracked and new files on top (uncommitted changes are tested too); what .gitignore names
    # (the host's .venv, models, caches) stays out.
    git clone -q --no-hardlinks "$REPO" "$ROOT/src" || return 1
    (cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf -) |
      tar -xf - -C "$ROOT/src"
  else
    mkdir -p "$ROOT/src" &&
      tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./constraints.txt --exclude=__pycache__ -cf - . |
      tar -xf - -C "$ROOT/src"
  fi
}

build() {  # the chroot for Debian $1 with QGIS and the repository set up in /src/.venv; 1 if it cannot be
  local suite=$1 t0=$SECONDS
  unmount_all
  rm -rf --one-file-system "$ROOT"
  say "debootstrap --variant=minbase $suite from $MIRROR"
  quiet "debootstrap-$suite" debootstrap --variant=minbase "$suite" "$ROOT" "$MIRROR" || return 1
  say "debootstrap: $((SECONDS - t0)) s"
  t0=$SECONDS
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" && mkdir -p "$ROOT/etc/ssl" &&
    cp -L "$CA" "$ROOT/etc/ssl/host-ca.crt" || return 1
  # The host's CA bundle for https mirrors too (pip gets it through PIP_CERT).
  echo 'Acquire::https::CAInfo "/etc/ssl/host-ca.crt";' > "$ROOT/etc/apt/apt.conf.d/99ci-host-ca" || return 1
  mount_all || return 1
  quiet "apt-$suite" in_root apt-get -o Acquire::Check-Valid-Until=false update || return 1
  quiet "apt-$suite" in_root apt-get install -y --no-install-recommends "${PACKAGES[@]}" || return 1
  say "apt: $(grep -c '^Setting up' "$WORK/apt-$suite.log") packages in $((SECONDS - t0)) s"
  t0=$SECONDS
  copy_repo || return 1
  # Makes /src/.venv (--system-site-packages) with numpy pinned to the chroot's Debian numpy.
  in_root bash -c 'cd /src && bash scripts/setup.sh' || return 1
  say "venv and pip: $((SECONDS - t0)) s"
}

run_suite() {
  # As the root of its own mount namespace (pivot_root, not chroot) where the kernel allows it: user
  # namespaces, which the real full-disk test uses, are refused to chrooted processes.
  if unshare --mount --propagation private true 2> /dev/null; then
    unshare --mount --propagation private --fork sh -c '
      set -e
      root=$1
      shift
      mount --rbind "$root" "$root"
      cd "$root"
      mkdir -p .ci-old-root
      pivot_root . .ci-old-root
      umount -l /.ci-old-root
      rmdir /.ci-old-root
      exec chroot . "$@"' sh "$ROOT" /usr/bin/env -i "${ENV[@]}" bash /src/.ci/suite.sh
  else
    say "no private mount namespace here: plain chroot (tests that need user namespaces will skip)"
    in_root bash /src/.ci/suite.sh
  fi
}

command -v debootstrap > /dev/null || quiet debootstrap-install apt-get install -y --no-install-recommends debootstrap
MIRROR=$(host_mirror)
t_start=$SECONDS
# The first suite that installs is tested; CI_CHROOT_SUITES="nosuch trixie" exercises the fallback.
read -r -a suites <<< "${CI_CHROOT_SUITES:-sid trixie}"
suite=""
failed=()
for s in "${suites[@]}"; do
  if build "$s"; then
    suite=$s
    break
  fi
  failed+=("$s")
  say "WARNING: Debian $s cannot be installed today (see above)"
done
if [ -z "$suite" ]; then
  say "no Debian suite of '${suites[*]}' could be installed"
  exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
  say "WARNING: FALLBACK: testing Debian $suite because ${failed[*]} could not be installed"
  suite="$suite (fallback: ${failed[*]} not installable)"
fi
versions=$(in_root /src/.venv/bin/python /src/.ci/versions.py)
say "Debian $suite: $versions; installed in $((SECONDS - t_start)) s"
if [ -n "${CI_VERSIONS_FILE:-}" ]; then echo "Debian $suite: $versions" > "$CI_VERSIONS_FILE"; fi
t0=$SECONDS
rc=0
run_suite || rc=$?
say "tests: $((SECONDS - t0)) s"
exit "$rc"
