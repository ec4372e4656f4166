#!/usr/bin/env bash
# Installs llmerge's build and test dependencies from Debian's packages.
# Idempotent: packages already present are not reinstalled, and apt is not touched
# at all when everything is there. On macOS, use the Homebrew line in README.md.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libhwy-dev libeigen3-dev
  libgtest-dev libgmock-dev libbenchmark-dev python3 python3-venv python3-dev time
  libcpp-httplib-dev  # llmerge serve (src/server/)
  chromium  # the browser tests (tests/report/, tests/server/), driven by playwright
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
