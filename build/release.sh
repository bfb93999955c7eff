#!/usr/bin/env bash
# Builds every release artifact of CcRelay into one folder:
#
#   <out>/packages/   CcRelay.Core, CcRelay.Host (embedding) and cc-relay (the .NET tool): .nupkg and .snupkg
#   <out>/linux-x64/  cc-relay, the native executable (Native AOT, linux-x64; one file: needs no .NET installed, and
#                     SQLite, for the usage ledger, is linked in: src/CcRelay.Cli/SqliteStatic.targets)
#   <out>/cc-relay-<version>-linux-x64.tar.gz   it, packed
#   <out>/SHA256SUMS
#
#   bash build/release.sh [--out DIR]      (default: artifacts/release/<version>)
#
# Everything is built in Release from the working tree as it is. Warnings are errors, the Native AOT publish's trim
# and AOT analysis of CcRelay's own code included; the collapsed per-assembly notes for third-party packages
# (IL2104/IL3053: FSharp.Core, Google.Apis.Core, Newtonsoft.Json, Grpc.AspNetCore.Server.Reflection) stay warnings, listed in docs/install.md.
# Native AOT needs clang and zlib (Debian: clang zlib1g-dev), and the static SQLite library it links in (Debian:
# libsqlite3-dev's libsqlite3.a); they are installed when missing.
# A release built in a clone whose `origin` is a GitHub URL carries SourceLink and the repository URL.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

VERSION=$(sed -nE 's:.*<Version>([^<]+)</Version>.*:\1:p' Directory.Build.props | head -1)
OUT=$REPO/artifacts/release/$VERSION
while (($#)); do
  case $1 in
    --out) OUT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    *) echo "usage: bash build/release.sh [--out DIR]" >&2; exit 2 ;;
  esac
done
say() { printf '==> %s\n' "$*"; }

need_apt=()
command -v clang >/dev/null || need_apt+=(clang)
[[ -f /usr/include/zlib.h ]] || need_apt+=(zlib1g-dev)
[[ -f /usr/lib/x86_64-linux-gnu/libsqlite3.a ]] || need_apt+=(libsqlite3-dev)
if ((${#need_apt[@]})); then
  say "installing ${need_apt[*]} (Native AOT's native toolchain)"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

rm -rf "$OUT"
mkdir -p "$OUT/packages" "$OUT/linux-x64"
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-release.XXXXXX")
trap 'rm -rf "$LOGS"' EXIT

run() { # LOG COMMAND...: runs, shows the log's errors and warnings on failure
  local log=$LOGS/$1
  shift
  if ! "$@" >"$log" 2>&1; then
    grep -E "error|warning" "$log" | sort -u >&2 || tail -40 "$log" >&2
    echo "FAILED: $*" >&2
    exit 1
  fi
}

say "dotnet pack (Release): CcRelay.Core, CcRelay.Host, cc-relay $VERSION"
for project in src/CcRelay.Core/CcRelay.Core.fsproj src/CcRelay.Host/CcRelay.Host.csproj src/CcRelay.Cli/CcRelay.Cli.csproj; do
  run pack.log dotnet pack "$project" -c Release -o "$OUT/packages"
done

# The AOT build has an artifacts folder of its own: its restore (the ILCompiler packages, for linux-x64) must not
# disturb the JIT build's, and its lock files are its own (src/Directory.Build.props).
say "dotnet publish (Release, Native AOT, linux-x64)"
run publish.log dotnet publish src/CcRelay.Cli/CcRelay.Cli.csproj -c Release -r linux-x64 -p:PublishAot=true \
  -p:ArtifactsPath="$REPO/artifacts/aot" -o "$LOGS/publish"
# the executable alone: SQLite is linked in; the publish folder's other files (symbols, XML docs, the JIT build's
# native helpers, libe_sqlite3.so, which the executable does not load) are not needed. tests/Packaging/native.sh
# runs exactly this file, alone in a folder.
cp "$LOGS/publish/cc-relay" "$OUT/linux-x64/"
grep -E "warning IL" "$LOGS/publish.log" | sed -E 's/ \[.*//' | sort -u | sed 's/^/    /' || true

say "checking the native executable"
actual=$("$OUT/linux-x64/cc-relay" version)
[[ $actual == "cc-relay $VERSION" ]] || { echo "FAILED: the native cc-relay printed '$actual'" >&2; exit 1; }

tar -C "$OUT/linux-x64" -czf "$OUT/cc-relay-$VERSION-linux-x64.tar.gz" cc-relay
(cd "$OUT" && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs sha256sum >SHA256SUMS)

say "done: $OUT"
(cd "$OUT" && find . -type f -printf '%10s  %P\n' | sort -k2)
