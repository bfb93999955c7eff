#!/usr/bin/env bash
# Runs every CcRelay test on a fresh machine: installs what is missing, checks formatting, builds with
# warnings as errors, runs the Core, property and host suites, the packaging checks (tests/Packaging/run.sh), the
# native executable (tests/Packaging/native.sh: a Native AOT publish, then version, /health and a relayed request) and
# the dashboard in tmux (tests/Tui/run.sh), three relays on one PostgreSQL (tests/SharedState/run.sh), then the
# end-to-end run with the real Claude Code CLI. Ends with one line `N passed, M failed` (the sum over every
# runner); exits non-zero if anything failed.
#
#   bash tests/run-all.sh            everything
#   SKIP_E2E=1 bash tests/run-all.sh  without the Claude Code end-to-end run
#   SKIP_NATIVE=1 bash tests/run-all.sh  without the Native AOT publish and its checks
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-tests.XXXXXX")
trap 'rm -rf "$LOG_DIR"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

passed=0
failed=0

step() { printf '\n==> %s\n' "$*"; }
fail_step() { echo "FAILED: $*"; failed=$((failed + 1)); }

# ---- what the suites need beyond the .NET SDK ------------------------------------------------------
need_apt=()
# tmux: tests/Tui/run.sh drives the dashboard in it
for tool in jq curl tmux; do command -v "$tool" >/dev/null || need_apt+=("$tool"); done
command -v node >/dev/null || need_apt+=(nodejs)
# the plugin tests (Host.Tests/Pipelines) run the Python and JavaScript example plugins with a cleared
# environment, so the interpreters must sit in /usr/bin or /usr/local/bin (not only behind pyenv/nvm shims),
# and prlimit (util-linux) applies their CPU and memory limits
[[ -x /usr/bin/python3 || -x /usr/local/bin/python3 ]] || need_apt+=(python3)
[[ -x /usr/bin/node || -x /usr/local/bin/node ]] || { [[ " ${need_apt[*]} " == *" nodejs "* ]] || need_apt+=(nodejs); }
command -v prlimit >/dev/null || need_apt+=(util-linux)
command -v npm >/dev/null || need_apt+=(npm)
# promtool (Host.Tests' `promtool check metrics` test fails without it) comes with Debian's prometheus package
command -v promtool >/dev/null || need_apt+=(prometheus)
# Native AOT's native toolchain and the static SQLite it links in (tests/Packaging/native.sh, as build/release.sh)
if [[ -z ${SKIP_NATIVE:-} ]]; then
  command -v clang >/dev/null || need_apt+=(clang)
  [[ -f /usr/include/zlib.h ]] || need_apt+=(zlib1g-dev)
  [[ -f /usr/lib/x86_64-linux-gnu/libsqlite3.a ]] || need_apt+=(libsqlite3-dev)
fi
if ((${#need_apt[@]})); then
  step "installing ${need_apt[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

step "npm ci (tests/Interop: the independent AWS event-stream codec and SigV4 signer the tests check against)"
(cd tests/Interop && npm ci --no-audit --no-fund >"$LOG_DIR/npm-interop.log" 2>&1) || { cat "$LOG_DIR/npm-interop.log"; fail_step "npm ci in tests/Interop"; }

step "dotnet tool restore"
dotnet tool restore >/dev/null || fail_step "dotnet tool restore"

step "build (Release, warnings are errors)"
if ! dotnet build CcRelay.sln -c Release >"$LOG_DIR/build.log" 2>&1; then
  grep -E "error|warning" "$LOG_DIR/build.log" | sort -u
  fail_step "build"
  echo "$passed passed, $failed failed"
  exit 1
fi

# NOTE: dotnet format cannot load F# projects; it sees Core's types only through Core's built *Debug*
# assembly (its design-time build is Debug). Without it, every `using CcRelay.Core` looks unnecessary.
step "formatting: fantomas (F#) and dotnet format (C#)"
dotnet build src/CcRelay.Core -c Debug >"$LOG_DIR/core-debug.log" 2>&1 || fail_step "Core Debug build for dotnet format"
dotnet fantomas --check src tests bench/Core.Bench || fail_step "fantomas --check (run: dotnet fantomas src tests bench/Core.Bench)"
if ! dotnet format CcRelay.sln --verify-no-changes >"$LOG_DIR/format.log" 2>&1; then
  grep -v "Could not format .*fsproj" "$LOG_DIR/format.log"
  fail_step "dotnet format --verify-no-changes (run: dotnet format CcRelay.sln)"
fi

# The benchmarks are not in the solution (BenchmarkDotNet and the load tools are no part of the product), but they
# build on the product's internals: a change there must not break them unseen.
step "bench tools build (Release, warnings are errors) and dotnet format"
for project in bench/Core.Bench/Core.Bench.fsproj bench/Host.Bench/Host.Bench.csproj bench/LoadGen/LoadGen.csproj bench/FakeUpstream/FakeUpstream.csproj bench/TomlCompare/TomlCompare.csproj bench/GcTrace/GcTrace.csproj; do
  if ! dotnet build "$project" -c Release >"$LOG_DIR/bench-build.log" 2>&1; then
    grep -E "error|warning" "$LOG_DIR/bench-build.log" | sort -u
    fail_step "build $project"
  elif [[ $project == *.csproj ]] && ! dotnet format "$project" --verify-no-changes >"$LOG_DIR/bench-format.log" 2>&1; then
    cat "$LOG_DIR/bench-format.log"
    fail_step "dotnet format --verify-no-changes (run: dotnet format $project)"
  fi
done

step "unit, property and integration tests"
dotnet test CcRelay.sln -c Release --no-build 2>&1 | tee "$LOG_DIR/test.log" | grep -E "^\s*(Passed|Failed)[!]|^\s*Failed |Error Message|Assert\." || true
while read -r line; do
  f=$(sed -E 's/.*Failed:[[:space:]]*([0-9]+).*/\1/' <<<"$line")
  p=$(sed -E 's/.*Passed:[[:space:]]*([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + p))
  failed=$((failed + f))
done < <(grep -E "^\s*(Passed|Failed)! +- +Failed:" "$LOG_DIR/test.log")
runners=$(grep -cE "^\s*(Passed|Failed)! +- +Failed:" "$LOG_DIR/test.log")
if [[ $runners -lt 3 ]]; then fail_step "dotnet test reported $runners of 3 test assemblies"; fi

# Packs the Release build above (no rebuild); installs the tool on a clean HOME; builds examples/Embedded on the package.
step "packages: dotnet pack, the cc-relay tool installed from them, examples/Embedded on the packed CcRelay.Host"
bash tests/Packaging/run.sh --no-build 2>&1 | tee "$LOG_DIR/packaging.log"
summary=$(grep -E "^Packaging: [0-9]+ passed, [0-9]+ failed$" "$LOG_DIR/packaging.log" | tail -1)
if [[ -n $summary ]]; then
  passed=$((passed + $(sed -E 's/Packaging: ([0-9]+) passed.*/\1/' <<<"$summary")))
  failed=$((failed + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$summary")))
else
  fail_step "tests/Packaging/run.sh printed no summary"
fi

# The native executable: a Native AOT publish (linux-x64), its warnings, version, /health and one relayed request.
if [[ -z ${SKIP_NATIVE:-} ]]; then
  step "native executable: Native AOT publish (linux-x64), no trim/AOT warning of ours, version, serve, a relayed request"
  bash tests/Packaging/native.sh 2>&1 | tee "$LOG_DIR/native.log"
  summary=$(grep -E "^Native: [0-9]+ passed, [0-9]+ failed$" "$LOG_DIR/native.log" | tail -1)
  if [[ -n $summary ]]; then
    passed=$((passed + $(sed -E 's/Native: ([0-9]+) passed.*/\1/' <<<"$summary")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$summary")))
  else
    fail_step "tests/Packaging/native.sh printed no summary"
  fi
fi

# The dashboard, driven in tmux: the real cc-relay tui against a relay with two fake upstreams (tests/Tui/run.sh).
step "tui: cc-relay tui and serve --tui in tmux (80x24, send-keys, capture-pane)"
bash tests/Tui/run.sh --no-build 2>&1 | tee "$LOG_DIR/tui.log"
summary=$(grep -E "^TUI: [0-9]+ passed, [0-9]+ failed$" "$LOG_DIR/tui.log" | tail -1)
if [[ -n $summary ]]; then
  passed=$((passed + $(sed -E 's/TUI: ([0-9]+) passed.*/\1/' <<<"$summary")))
  failed=$((failed + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$summary")))
else
  fail_step "tests/Tui/run.sh printed no summary"
fi

# Several relays on one PostgreSQL (tests/SharedState/run.sh): three real relays, a round-robin client, the database
# killed and restarted mid-run; installs PostgreSQL from Debian's packages when missing.
step "shared state: three relays on one PostgreSQL (circuits, revocation, budgets, a lost database)"
bash tests/SharedState/run.sh --no-build 2>&1 | tee "$LOG_DIR/shared.log"
summary=$(grep -E "^SharedState: [0-9]+ passed, [0-9]+ failed$" "$LOG_DIR/shared.log" | tail -1)
if [[ -n $summary ]]; then
  passed=$((passed + $(sed -E 's/SharedState: ([0-9]+) passed.*/\1/' <<<"$summary")))
  failed=$((failed + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$summary")))
else
  fail_step "tests/SharedState/run.sh printed no summary"
fi

if [[ -z ${SKIP_E2E:-} ]]; then
  step "end to end: real Claude Code CLI through the relay"
  bash tests/E2E/run.sh 2>&1 | tee "$LOG_DIR/e2e.log"
  e2e_status=${PIPESTATUS[0]}
  summary=$(grep -E "^E2E: [0-9]+ passed, [0-9]+ failed$" "$LOG_DIR/e2e.log" | tail -1)
  if [[ -n $summary ]]; then
    passed=$((passed + $(sed -E 's/E2E: ([0-9]+) passed.*/\1/' <<<"$summary")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$summary")))
  else
    fail_step "E2E printed no summary (exit $e2e_status)"
  fi
  if [[ $e2e_status -ne 0 && -n $summary && $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$summary") -eq 0 ]]; then
    fail_step "E2E exited $e2e_status"
  fi
fi

echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
