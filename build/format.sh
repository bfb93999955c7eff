#!/usr/bin/env bash
# Formats the tree as CI checks it: Fantomas for F#, dotnet format for C#.
# dotnet format cannot load F# projects; it sees Core's types only through Core's built Debug assembly, so a stale or
# missing Debug build makes it report false IDE0005/CS0246 errors on C# files that use Core (and "fix" them by
# deleting usings). This script builds Core in Debug first, then formats.
#   bash build/format.sh           # format in place
#   bash build/format.sh --check   # only check, as tests/run-all.sh does (exit 1 on a difference)
set -euo pipefail
cd "$(dirname "$0")/.."
# the benchmark tools are not in the solution; tests/run-all.sh checks them one by one
BENCH=(bench/Host.Bench/Host.Bench.csproj bench/LoadGen/LoadGen.csproj bench/FakeUpstream/FakeUpstream.csproj bench/TomlCompare/TomlCompare.csproj bench/GcTrace/GcTrace.csproj)
dotnet tool restore >/dev/null
dotnet build src/CcRelay.Core -c Debug -v q -nologo >/dev/null
if [[ ${1:-} == --check ]]; then
  dotnet fantomas --check src tests bench/Core.Bench
  dotnet format CcRelay.sln --verify-no-changes
  for p in "${BENCH[@]}"; do dotnet format "$p" --verify-no-changes; done
else
  dotnet fantomas src tests bench/Core.Bench
  dotnet format CcRelay.sln
  for p in "${BENCH[@]}"; do dotnet format "$p"; done
fi
