#!/usr/bin/env bash
# Make the peers' virtual environments for bench/ (not needed by the tests):
#   bench/_venvs/allensdk  — the AllenSDK 2.16.2 with its pinned stack (../shared/peers lock file)
#   bench/_venvs/pynapple  — pynapple (pinned below) with h5py, for bench/bench_spike_analysis.py
#   bench/_venvs/streaming — fsspec, s3fs, remfile, h5py (pinned below), for bench/bench_streaming.py
# Usage: bash bench/peers.sh   (override the folder with ECEPHYS_BENCH_VENVS=/somewhere)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venvs=${ECEPHYS_BENCH_VENVS:-$here/_venvs}
lock="$here/../../shared/peers/allensdk-2.16.2.lock.txt"
mkdir -p "$venvs"
if [ ! -x "$venvs/allensdk/bin/python" ]; then
  python3 -m venv "$venvs/allensdk"
  if [ -f "$lock" ]; then
    "$venvs/allensdk/bin/pip" install --quiet -r "$lock"
  else
    "$venvs/allensdk/bin/pip" install --quiet "allensdk==2.16.2" "hdmf<4"
  fi
fi
echo "AllenSDK peer: $venvs/allensdk/bin/python"
pynapple_pins=("pynapple==0.11.4" "h5py==3.16.0")
if [ ! -x "$venvs/pynapple/bin/python" ]; then
  python3 -m venv "$venvs/pynapple"
  "$venvs/pynapple/bin/pip" install --quiet "${pynapple_pins[@]}"
fi
echo "pynapple peer: $venvs/pynapple/bin/python"
streaming_pins=("fsspec==2026.9.0" "s3fs==2026.9.0" "remfile==0.1.15" "h5py==3.16.0" "numpy==2.4.6")
if [ ! -x "$venvs/streaming/bin/python" ]; then
  python3 -m venv "$venvs/streaming"
  "$venvs/streaming/bin/pip" install --quiet "${streaming_pins[@]}"
fi
echo "streaming peer: $venvs/streaming/bin/python"
