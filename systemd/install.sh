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
#
#   sudo systemd/install.sh --kit --ssid RESCUE7 [--country DE] [--hostname talk7]
#                   also make this Pi the offline field kit (docs/operations.md, "Field kit over
#                   HTTPS"): a Wi-Fi hotspot (NetworkManager, 10.42.0.1, WPA2; the passphrase is
#                   asked for, or read from $TB_WIFI_PASSPHRASE), its name on the local network
#                   (<hostname>.local by mDNS, and talk.lan), the team CA and the kit's HTTPS
#                   certificate, and a kit config: the page and MQTT over wss:// on :8443, the CA
#                   on http://10.42.0.1:8080, the embedded broker on the Wi-Fi.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
PREFIX=""
START=1
KIT=0
SSID=""
COUNTRY=""
KIT_HOST=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kit) KIT=1 ;;
    --ssid) SSID="${2:?--ssid needs a network name}"; shift ;;
    --country) COUNTRY="${2:?--country needs a two-letter country code}"; shift ;;
    --hostname) KIT_HOST="${2:?--hostname needs a name}"; shift ;;
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
if [ "$KIT" = 1 ]; then
  [ -n "$SSID" ] || { echo "install.sh: --kit needs --ssid NAME (the hotspot's network name)" >&2; exit 2; }
  # Both go into NetworkManager's keyfile: printable ASCII only, so nothing can add a line to it.
  ascii() { [ "$(printf %s "$1" | LC_ALL=C tr -d ' -~' | wc -c)" -eq 0 ]; }
  ascii "$SSID" && [ "${#SSID}" -le 32 ] || { echo "install.sh: --ssid is 1 to 32 printable ASCII characters" >&2; exit 2; }
  [ -z "$COUNTRY" ] || [[ "$COUNTRY" =~ ^[A-Z]{2}$ ]] || { echo "install.sh: --country is two capital letters (DE, GB, US …)" >&2; exit 2; }
  KIT_HOST="${KIT_HOST:-$(hostname)}"
  [[ "$KIT_HOST" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || { echo "install.sh: --hostname must be lowercase letters, digits and inner hyphens (got $KIT_HOST)" >&2; exit 2; }
  PSK="${TB_WIFI_PASSPHRASE:-}"
  if [ -z "$PSK" ] && [ "$DRY" = 0 ]; then
    read -r -s -p "Wi-Fi passphrase for $SSID (8-63 characters): " PSK </dev/tty; echo
  fi
  [ "$DRY" = 1 ] && PSK="${PSK:-dry-run-passphrase}"
  ascii "$PSK" && [ "${#PSK}" -ge 8 ] && [ "${#PSK}" -le 63 ] || { echo "install.sh: the Wi-Fi passphrase must be 8 to 63 printable ASCII characters (WPA2)" >&2; exit 2; }
fi

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
elif [ "$KIT" = 1 ]; then
  say "  the field kit's config is written below"
else
  run install -m 0640 "$SRC/systemd/config.example.yaml" "$ETC/config.yaml"
  # Readable by the service, which may hold a broker password.
  if [ "$SYSTEM" = 1 ]; then run chgrp "$USER_NAME" "$ETC/config.yaml"; fi
fi

if [ "$KIT" = 1 ]; then
  KIT_IP=10.42.0.1
  say "field kit: hotspot $SSID on $KIT_IP, name $KIT_HOST"
  if [ "$SYSTEM" = 1 ]; then
    need nmcli "the kit's hotspot uses NetworkManager (Raspberry Pi OS bookworm and later)"
    if [ -n "$COUNTRY" ] && command -v raspi-config >/dev/null 2>&1; then run raspi-config nonint do_wifi_country "$COUNTRY"; fi
    if [ "$(hostname)" != "$KIT_HOST" ]; then run hostnamectl set-hostname "$KIT_HOST"; fi
    # mDNS: <hostname>.local on iOS, macOS, Windows, Linux (and recent Android).
    command -v avahi-daemon >/dev/null 2>&1 || run apt-get install -y --no-install-recommends avahi-daemon
  fi
  # NetworkManager's keyfile for an access point in shared mode (it runs DHCP and DNS for the
  # phones). Mode 0600: it holds the passphrase, and NetworkManager ignores a readable one.
  NMCONN="$PREFIX/etc/NetworkManager/system-connections/talkbridge-hotspot.nmconnection"
  run mkdir -p "$(dirname "$NMCONN")"
  if [ "$DRY" = 1 ]; then
    printf '+ %s\n' "write $NMCONN (mode 0600)"
  else
    umask 077
    cat >"$NMCONN" <<EOT
[connection]
id=talkbridge-hotspot
type=wifi
interface-name=wlan0
autoconnect=true
autoconnect-priority=100

[wifi]
mode=ap
ssid=$SSID
band=bg

[wifi-security]
key-mgmt=wpa-psk
proto=rsn
pairwise=ccmp
group=ccmp
psk=$PSK

[ipv4]
method=shared
address1=$KIT_IP/24

[ipv6]
method=disabled
EOT
    chmod 0600 "$NMCONN"
    umask 022
  fi
  # A name every phone resolves, Android included: NetworkManager's dnsmasq answers it.
  run mkdir -p "$PREFIX/etc/NetworkManager/dnsmasq-shared.d"
  if [ "$DRY" = 1 ]; then printf '+ %s\n' "write $PREFIX/etc/NetworkManager/dnsmasq-shared.d/talkbridge.conf"; else echo "address=/talk.lan/$KIT_IP" >"$PREFIX/etc/NetworkManager/dnsmasq-shared.d/talkbridge.conf"; fi

  say "field kit: team CA and the kit's certificate in $ETC/tls"
  run node "$OPT/gateway/bin/talkbridge.js" tls init --dir "$ETC/tls" --name "talkbridge kit $KIT_HOST" --host "$KIT_HOST.local,$KIT_HOST,talk.lan,$KIT_IP,localhost,127.0.0.1"
  if [ "$SYSTEM" = 1 ]; then run chown "$USER_NAME:" "$ETC/tls/server.key"; fi

  # An existing config is never touched, a kit's own included (it may have been edited since).
  KITCONF="$ETC/config.yaml"
  if [ -e "$KITCONF" ]; then
    say "  $KITCONF exists, left as it is; the kit's config is in $ETC/kit.example.yaml to compare"
    KITCONF="$ETC/kit.example.yaml"
  fi
  if [ "$DRY" = 1 ]; then
    printf '+ %s\n' "write $KITCONF"
  else
    cat >"$KITCONF" <<EOT
# talkbridge field kit, written by install.sh --kit (docs/operations.md, "Field kit over HTTPS").
# Phones: join Wi-Fi "$SSID", open http://$KIT_IP:8080/ once to install the team CA, then
# https://$KIT_HOST.local:8443/ (or https://$KIT_IP:8443/, https://talk.lan:8443/).
gateway:
  id: $KIT_HOST
  name: $KIT_HOST field kit
embeddedBroker:
  # Every address, the hotspot's included: radios on other Pis connect over TCP. Phones use
  # wss:// on the web port. With an eth0 uplink, set 10.42.0.1 or add auth (docs/security.md).
  host: 0.0.0.0
http:
  host: 0.0.0.0
  port: 8443
  redirectPort: 8080
  tls:
    cert: /etc/talkbridge/tls/server.crt
    key: /etc/talkbridge/tls/server.key
    ca: /etc/talkbridge/tls/ca.crt
channels:
  - name: base
log:
  level: info
EOT
    chmod 0640 "$KITCONF"
    if [ "$SYSTEM" = 1 ]; then chgrp "$USER_NAME" "$KITCONF"; fi
  fi
  if [ "$SYSTEM" = 1 ]; then run nmcli connection reload; run nmcli connection up talkbridge-hotspot || say "  the hotspot did not come up now (wlan0 busy or blocked?): it will at the next boot"; fi
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
