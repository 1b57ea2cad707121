#!/bin/sh
# install_toolchains.sh - install the cross compilers and QEMU (qemu-system-arm; qemu-system-misc
# holds qemu-system-riscv32) that q4sdk's boards use.
# Idempotent: packages already installed are skipped. Debian/Ubuntu (apt); run as root or with sudo.
set -eu

PACKAGES="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm qemu-system-misc gcc-riscv64-unknown-elf clang clang-format"

missing=""
for package in $PACKAGES; do
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        echo "already installed: $package"
    else
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    echo "all toolchain packages are installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing:$missing"
$SUDO apt-get update
# shellcheck disable=SC2086  # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
