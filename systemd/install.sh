#!/usr/bin/env bash
# Installs talkbridge as a systemd service on Raspberry Pi OS (Bookworm) or Debian:
# the code in /opt/talkbridge, a "talkbridge" system user in the audio/gpio/dialout groups, the
# unit, the udev rules for CM108/AIOC HID access, a commented /etc/talkbridge/config.yaml, and the
# service enabled. Running it again upgrades in place; an existing config is never touched.
#
#   sudo systemd/install.sh              install or upgrade, then (re)start the service
#   systemd/install.sh --dry-run         print every step, change nothing
#   --prefix DIR    install under DIR instead of / (packaging, tests); skips user, systemctl, udevadm
#   --no-start      enable the service but do not (re)start it
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
PREFIX=""
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
    --prefix=*) PREFIX="${1#--prefix=}" ;;
    --no-start) START=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
PREFIX="${PREFIX%/}"

USER_NAME=talkbridge
OPT="$PREFIX/opt/talkbridge"
ETC="$PREFIX/etc/talkbridge"
UNIT="$PREFIX/etc/systemd/system/talkbridge.service"
RULES="$PREFIX/etc/udev/rules.d/99-talkbridge.rules"
BIN="$PREFIX/usr/local/bin/talkbridge"
# With a prefix this is a staged install: nothing on the running system (users, systemd, udev).
SYSTEM=1
[ -n "$PREFIX" ] && SYSTEM=0

say() { printf '==> %s\n' "$*"; }
run() {
  if [ "$DRY" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

need() { command -v "$1" >/dev/null 2>&1 || { echo "install.sh: $1 is required: $2" >&2; exit 1; }; }

if [ "$DRY" = 0 ] && [ "$SYSTEM" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0), or try --dry-run" >&2
  exit 1
fi
# Which Node a Pi gets, and how to get a supported one (README, "Node on a Raspberry Pi").
node_help() {
  cat >&2 <<'EOT'
  talkbridge needs Node.js 20.19 or later (22 or 24 LTS recommended).
  Raspberry Pi OS / Debian trixie (13):   sudo apt-get install nodejs npm        (Node 20.19)
  Raspberry Pi OS / Debian bookworm (12): its own nodejs is 18, too old. Use NodeSource's 22:
    curl -fsSL https://deb.nodesource.com/setup_22.x | sudo -E bash - && sudo apt-get install -y nodejs
  or the official build for your CPU (uname -m: aarch64 = arm64) from https://nodejs.org/en/download
EOT
}
command -v node >/dev/null 2>&1 || { echo "install.sh: Node.js is not installed" >&2; node_help; exit 1; }
need npm "it comes with Node.js (Debian: sudo apt-get install npm)"
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "install.sh: Node.js $(node -v) is too old" >&2
  node_help
  exit 1
fi
[ "$SYSTEM" = 1 ] && need systemctl "talkbridge's service needs systemd (or use systemd/ecosystem.config.cjs with pm2)"

say "service user $USER_NAME"
if [ "$SYSTEM" = 1 ]; then
  if getent passwd "$USER_NAME" >/dev/null; then
    say "  $USER_NAME exists"
  else
    run useradd --system --user-group --home-dir /var/lib/talkbridge --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
  fi
  # Plain Debian has no gpio group; only join the groups this system has.
  for g in audio gpio dialout; do
    if getent group "$g" >/dev/null; then run usermod -a -G "$g" "$USER_NAME"; else say "  no $g group here, skipped"; fi
  done
fi

say "code in $OPT"
run mkdir -p "$OPT"
# A fresh copy each time, so files removed upstream do not linger; owned by root so the service
# cannot modify its own code.
if [ "$DRY" = 1 ]; then
  printf '+ %s\n' "tar -C $SRC --exclude=./node_modules --exclude=./.git --exclude=./scratch --exclude=./.tap -cf - . | tar -C $OPT -xf -"
else
  find "$OPT" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
  tar -C "$SRC" --exclude=./node_modules --exclude=./.git --exclude=./scratch --exclude=./.tap -cf - . | tar -C "$OPT" --no-same-owner -xf -
fi
# npm ci builds (the prepare script needs the dev dependencies), then the dev dependencies go.
run env -C "$OPT" npm ci --no-audit --no-fund
run env -C "$OPT" npm prune --omit=dev --no-audit --no-fund
run mkdir -p "$(dirname "$BIN")"
run ln -sfn /opt/talkbridge/gateway/bin/talkbridge.js "$BIN"

say "config in $ETC"
run mkdir -p "$ETC"
if [ -e "$ETC/config.yaml" ]; then
  say "  $ETC/config.yaml exists, left as it is"
else
  run install -m 0640 "$SRC/systemd/config.example.yaml" "$ETC/config.yaml"
  # Readable by the service, which may hold a broker password.
  if [ "$SYSTEM" = 1 ]; then run chgrp "$USER_NAME" "$ETC/config.yaml"; fi
fi

say "systemd unit and udev rules"
run install -D -m 0644 "$SRC/systemd/talkbridge.service" "$UNIT"
run install -D -m 0644 "$SRC/systemd/99-talkbridge.rules" "$RULES"
if [ "$SYSTEM" = 1 ]; then
  if command -v udevadm >/dev/null 2>&1; then
    run udevadm control --reload
    run udevadm trigger --subsystem-match=hidraw
  fi
  run systemctl daemon-reload
  run systemctl enable talkbridge.service
  if [ "$START" = 1 ]; then run systemctl restart talkbridge.service; fi
fi

say "done"
if [ "$DRY" = 0 ] && [ "$SYSTEM" = 1 ]; then
  echo "Edit /etc/talkbridge/config.yaml, then: sudo systemctl restart talkbridge"
  echo "Logs: journalctl -u talkbridge -f    Status: systemctl status talkbridge"
fi
