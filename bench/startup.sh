#!/usr/bin/env bash
# Startup and idle memory of the relay as users run it: the Native AOT executable against the JIT build
# (`dotnet cc-relay.dll`), side by side in one run (bench/startup.mjs does the measuring).
#
#   bash bench/startup.sh [--runs N] [--aot PATH] [--quick]
#
#   --runs N    runs per build (default 15; --quick: 3)
#   --aot PATH  the native executable to measure (default: published here into artifacts/aot, as build/release.sh does)
#
# Builds: jit     `dotnet artifacts/bin/CcRelay.Cli/release/cc-relay.dll` (dotnet build -c Release src/CcRelay.Cli)
#         aot     the Native AOT executable (linux-x64)
# Each run starts every build once, in turn; startup is spawn -> first 200 on GET /health; idle RSS is VmRSS after
# 20 requests (10 relayed to a fake upstream) and 1 s of idleness. Everything listens on 127.0.0.1; every process
# is stopped by its PID. Results: bench/out/startup-<UTC time>.md and .json.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
ARGS="$*"
RUNS=15
AOT=
while (($#)); do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --aot) AOT=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --quick) RUNS=3; shift ;;
    *) echo "usage: bash bench/startup.sh [--runs N] [--aot PATH] [--quick]" >&2; exit 2 ;;
  esac
done
command -v node >/dev/null || { echo "bench/startup.sh needs node" >&2; exit 2; }
say() { printf '==> %s\n' "$*"; }

JIT_DLL=$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll
say "building the JIT relay (dotnet build -c Release src/CcRelay.Cli)"
dotnet build -c Release src/CcRelay.Cli >/dev/null
if [[ -z $AOT ]]; then
  { command -v clang >/dev/null && [[ -f /usr/lib/x86_64-linux-gnu/libsqlite3.a ]]; } \
    || { echo "Native AOT needs clang, zlib1g-dev and libsqlite3-dev (bash build/release.sh installs them)" >&2; exit 2; }
  say "publishing the Native AOT relay (linux-x64, artifacts/aot; takes minutes)"
  dotnet publish src/CcRelay.Cli/CcRelay.Cli.csproj -c Release -r linux-x64 -p:PublishAot=true \
    -p:ArtifactsPath="$ROOT/artifacts/aot" -o "$ROOT/artifacts/aot/publish" >/dev/null
  AOT=$ROOT/artifacts/aot/publish/cc-relay
fi
[[ -x $AOT ]] || { echo "not an executable: $AOT" >&2; exit 2; }

mkdir -p bench/out
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/out/startup-$STAMP
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "measuring: $RUNS runs of each build, interleaved"
node bench/startup.mjs --runs "$RUNS" --out "$OUT.json" \
  "jit=dotnet $JIT_DLL" \
  "aot=$AOT" | tee "$OUT.log"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "# Startup and idle RSS, $STAMP"
  echo
  echo "Command: \`bash bench/startup.sh${ARGS:+ $ARGS}\` ($RUNS runs); commit $(git rev-parse --short HEAD); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');"
  echo "load average before $LOAD_BEFORE, after $LOAD_AFTER; native executable $(stat -c %s "$AOT") bytes."
  echo
  sed -n '/^| build/,$p' "$OUT.log"
} >"$OUT.md"
rm -f "$OUT.log"
say "wrote $OUT.md and $OUT.json"
