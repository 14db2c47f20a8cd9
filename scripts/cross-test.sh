#!/usr/bin/env bash
# Cross-built tests for ARM boards, run under QEMU user mode on this x86_64 machine:
#   - msnet-runtime's tests (kernels against their scalar twins, plan validation, zero
#     allocations, thread splitting) built for the target;
#   - `msnet-run verify` on every shipped model, at 1 and 2 threads;
#   - `msnet-run info`, which names the conv kernel that ran (neon on aarch64);
#   - a two-iteration `msnet-run finetune`, then `msnet-run verify` on the model it wrote.
# And, with the target `thumbv7em`, a no_std build for Cortex-M of the runtime core and of the
# fundus-camera device loop. The target `size` (not among the defaults: it builds std) builds the
# device binary for aarch64 as docs/benchmarks.md ("Device binary") describes, runs `verify`
# with it, and fails if it is over 1 MiB.
#
#   scripts/cross-test.sh [aarch64] [armv7] [thumbv7em] [size]     default: the first three
#
# Installs what it needs (Debian's rustc-web with ARM standard libraries, cross gcc, QEMU);
# see ../shared/ARM.md for why it is done this way. Timings under QEMU mean nothing for a real
# board, so none are printed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64 armv7 thumbv7em)

install() {
    if command -v qemu-aarch64-static >/dev/null && command -v arm-linux-gnueabihf-gcc >/dev/null \
        && command -v aarch64-linux-gnu-gcc >/dev/null && [ -d /usr/lib/rustlib/src/rust ] \
        && [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ]; then
        return
    fi
    echo "== installing the ARM toolchain (Debian rustc-web, cross gcc, QEMU)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Not armhf: its package index fails to download on these machines.
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends rustc-web cargo-web rust-web-src \
        libstd-rust-web-dev libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
        libc6-dev-arm64-cross qemu-user-static gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
}
install

# Debian's compiler has the ARM standard libraries; rustup's stays the host's. Its builds get
# their own target directory, so the two compilers never invalidate each other's artifacts.
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR="${MSNET_CROSS_TARGET_DIR:-$HOME/.cache/msnet-edge/target-cross}"
models=()
for m in models/*/; do
    [ -f "$m/model.msplan" ] && models+=("${m%/}")
done

# Runs the crate tests and msnet-run for one Linux target. `$@`: extra cargo flags.
linux_target() {
    local triple="$1" runner="$2"
    shift 2
    echo "== $triple: msnet-runtime tests" >&2
    # One `cargo test` builds the runtime's tests and the msnet-run binary: with build-std,
    # `cargo build` and `cargo test` would not share their dependencies.
    # `--lib --tests`: doctests would need a rustdoc for the target (they run on the host).
    cargo test --release --locked --target "$triple" "$@" -p msnet-runtime -p msnet-run --no-run
    cargo test --release --locked --target "$triple" "$@" -p msnet-runtime --lib --tests
    local bin="$CARGO_TARGET_DIR/$triple/release/msnet-run" stripped
    stripped="$(mktemp)"
    "${STRIP:?}" -o "$stripped" "$bin"
    echo "== $triple: msnet-run ($(stat -c %s "$bin") bytes unstripped, $(stat -c %s "$stripped") stripped; release profile)" >&2
    rm -f "$stripped"
    for m in "${models[@]}"; do
        $runner "$bin" info --model "$m" | tail -1
        for threads in 1 2; do
            $runner "$bin" verify --model "$m" --threads "$threads"
        done
    done
    # The device loop of fine-tuning: the model's own mask of its sample image as the label
    # (a check of the mechanism, not a way to train), two iterations, and the new directory
    # must verify (plan and golden bundle written on this target).
    echo "== $triple: msnet-run finetune from models/wbc, then verify its result" >&2
    local tmp
    tmp="$(mktemp -d)"
    $runner "$bin" segment --model models/wbc --out "$tmp/seg" models/wbc/golden/phantom.png >/dev/null
    $runner "$bin" finetune --model models/wbc --images models/wbc/golden/phantom.png \
        --masks "$tmp/seg/phantom.mask.png" --iterations 2 --out "$tmp/tuned" --threads 2
    $runner "$bin" verify --model "$tmp/tuned" --threads 2
    rm -rf "$tmp"
}

for t in "${targets[@]}"; do
    case "$t" in
        aarch64)
            # cortex-a72 is a Raspberry Pi 4's core; QEMU's default has SVE, which no Pi has.
            # Never give qemu-aarch64 `-L /usr/aarch64-linux-gnu`: threads then hang forever.
            STRIP=aarch64-linux-gnu-strip linux_target aarch64-unknown-linux-gnu \
                "qemu-aarch64-static -cpu ${QEMU_CPU:-cortex-a72}"
            ;;
        armv7)
            # 32-bit Raspberry Pi OS. Debian has no prebuilt std for it: build-std.
            STRIP=arm-linux-gnueabihf-strip RUSTC_BOOTSTRAP=1 linux_target armv7-unknown-linux-gnueabihf \
                "qemu-arm-static -L /usr/arm-linux-gnueabihf" -Z build-std=std,panic_abort
            ;;
        thumbv7em)
            echo "== thumbv7em-none-eabihf: msnet-runtime and the fundus-camera loop (no_std, no alloc)" >&2
            RUSTC_BOOTSTRAP=1 cargo build --release --locked --target thumbv7em-none-eabihf \
                -Z build-std=core -p msnet-runtime -p msnet-fundus-camera
            ;;
        size)
            # The segmenting device binary: the `device` profile without the default features
            # (finetune, TIFF), std rebuilt for it without unwind tables or backtraces. RUSTFLAGS
            # rebuilds every crate, so it gets a target directory of its own.
            echo "== aarch64 device binary (docs/benchmarks.md, Device binary)" >&2
            CARGO_TARGET_DIR="$CARGO_TARGET_DIR-device" RUSTFLAGS="-C force-unwind-tables=no" \
                RUSTC_BOOTSTRAP=1 cargo build --locked --profile device \
                --target aarch64-unknown-linux-gnu -Z build-std=std,panic_abort \
                -Z build-std-features= -p msnet-run --no-default-features
            bin="$CARGO_TARGET_DIR-device/aarch64-unknown-linux-gnu/device/msnet-run"
            bytes="$(stat -c %s "$bin")"
            echo "== device msnet-run: $bytes bytes (stripped; limit 1048576)" >&2
            for m in "${models[@]}"; do
                qemu-aarch64-static -cpu "${QEMU_CPU:-cortex-a72}" "$bin" verify --model "$m" --threads 2
            done
            [ "$bytes" -le 1048576 ] || { echo "device msnet-run over 1 MiB" >&2; exit 1; }
            ;;
        *)
            echo "unknown target '$t' (choose aarch64, armv7, thumbv7em, size)" >&2
            exit 2
            ;;
    esac
done
echo "cross-test: ${targets[*]}: passed" >&2
