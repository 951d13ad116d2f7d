#!/usr/bin/env bash
# Install SLURM (slurmctld, slurmd, clients, plugins) and munge from apt on Debian 12, for the local
# test cluster that tests/slurm/cluster.py starts and stops itself. Idempotent: installs only what is missing.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for package in slurm-wlm munge; do
    installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
slurmctld -V
