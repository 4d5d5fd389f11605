#!/usr/bin/env bash
# Debian packages the music audio part uses to render MIDI (FluidSynth + a 6 MB General MIDI
# soundfont). Everything else installs from PyPI. Safe to re-run; does nothing where apt is absent.
set -euo pipefail
packages=(fluidsynth timgm6mb-soundfont)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-get not found: install ${packages[*]} with your system's package manager" >&2
  exit 0
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
