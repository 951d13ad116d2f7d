#!/usr/bin/env bash
# The Debian packages the tests need, installed with apt (Debian 12); idempotent: installs only what is missing.
# - slurm-wlm, munge: the local SLURM test cluster that tests/slurm/cluster.py starts and stops itself;
# - g++, ninja-build: torch builds the caching CPU allocator (training.cpu_allocator=caching) with them.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for package in slurm-wlm munge g++ ninja-build; do
    installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
slurmctld -V
c++ --version | head -1
ninja --version
