#!/usr/bin/env bash
# Cross-builds msnet-run for a Raspberry Pi 4/5 or Jetson (aarch64) or a 32-bit Raspberry Pi OS
# (armv7) and copies it, a model directory and the systemd unit to the board.
#
#   firmware-examples/rpi-jetson/deploy.sh BOARD MODEL_DIR [aarch64|armv7]
#   BOARD: an ssh destination (user@host) with sudo rights; default target aarch64.
#
# The toolchain comes from scripts/cross-test.sh's installer (Debian's rustc-web, cross gcc).
set -euo pipefail
board="$1"
model="$2"
arch="${3:-aarch64}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
case "$arch" in
    aarch64) triple=aarch64-unknown-linux-gnu; strip=aarch64-linux-gnu-strip; extra=() ;;
    armv7) triple=armv7-unknown-linux-gnueabihf; strip=arm-linux-gnueabihf-strip
        extra=(-Z build-std=std,panic_abort); export RUSTC_BOOTSTRAP=1 ;;
    *) echo "unknown arch '$arch' (aarch64 or armv7)" >&2; exit 2 ;;
esac
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR="${MSNET_CROSS_TARGET_DIR:-$HOME/.cache/msnet-edge/target-cross}"
cd "$root"
cargo build --release --locked --target "$triple" "${extra[@]}" -p msnet-run
bin="$CARGO_TARGET_DIR/$triple/release/msnet-run"
"$strip" -o /tmp/msnet-run-"$arch" "$bin"
echo "msnet-run for $arch: $(stat -c %s /tmp/msnet-run-"$arch") bytes stripped"

name="$(basename "$model")"
ssh "$board" 'sudo mkdir -p /opt/msnet/bin /opt/msnet/models /srv/msnet/inbox /srv/msnet/out &&
    (id msnet >/dev/null 2>&1 || sudo useradd --system --no-create-home msnet) &&
    sudo chown -R msnet:msnet /srv/msnet'
scp /tmp/msnet-run-"$arch" "$board":/tmp/msnet-run
# Only what the device needs: the config, the plan and the golden bundle for `verify`.
ssh "$board" "rm -rf /tmp/$name && mkdir -p /tmp/$name"
scp -r "$model/config.json" "$model/model.msplan" "$model/golden" "$board:/tmp/$name/"
scp "$here/msnet-watch.service" "$board":/tmp/
ssh "$board" "sudo install -m 755 /tmp/msnet-run /opt/msnet/bin/msnet-run &&
    sudo rm -rf /opt/msnet/models/$name && sudo mv /tmp/$name /opt/msnet/models/ &&
    sudo ln -sfn /opt/msnet/models/$name /opt/msnet/models/current &&
    sudo install -m 644 /tmp/msnet-watch.service /etc/systemd/system/ &&
    sudo systemctl daemon-reload"
echo "deployed; on the board: /opt/msnet/bin/msnet-run verify --model /opt/msnet/models/current"
