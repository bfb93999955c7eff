#!/usr/bin/env bash
# Socket syscalls of the relay per streamed request, counted with strace: the relay (default variant) in front of
# bench/FakeUpstream, N streaming requests of the benchmark's Claude Code body (5.6 KB) sent one at a time with curl
# after 300 warm-up requests (the relay's upstream connection is a warm pooled one, as in bench/ttfb.sh).
#
#   bench/syscalls.sh                         this tree's Release build, 50 requests
#   RELAY=/tmp/old/cc-relay.dll bench/syscalls.sh    another build
#   N=200 bench/syscalls.sh
#
# Reported: each socket syscall's count per request, and the sizes of the relay's sends (the upstream request is the
# one of 6,399 bytes: head and body; two sends of 4,096 and 2,303 when SocketsHttpHandler's write buffer splits it).
# curl opens a new connection per request (accept4, shutdown). Needs strace, curl. Everything listens on 127.0.0.1;
# every process is stopped on exit (by PID). Report: bench/out/syscalls-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
: "${N:=50}"
for tool in strace curl; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done
bench_scratch ccsyscalls
OUT="$BENCH/out/syscalls-$(date -u +%Y%m%dT%H%M%SZ).txt"
cd "$ROOT"
[[ -n ${RELAY:-} ]] || build_tools src/CcRelay.Cli
[[ -f "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" && -f "$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll" ]] || build_tools bench/LoadGen bench/FakeUpstream
RELAY_DLL="${RELAY:-$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
read -r P_UP P_RELAY <<<"$("${LOADGEN[@]}" ports 2)"
start_fake "$WORK/fake.log" "$P_UP"
start_relay relay "$P_RELAY" "$P_UP" default
RELAY_PID=${PIDS[-1]}
wait_listen "$P_UP"; wait_relay "$P_RELAY"
sed -e "s/__STREAM__/true/" -e "s/__BENCH__/x/" "$BENCH/payloads/messages.template.json" >"$WORK/body.json"
HEADERS=(); while IFS= read -r h; do [[ -n $h ]] && HEADERS+=(-H "$h"); done <"$BENCH/payloads/headers.txt"
send() { for _ in $(seq "$1"); do curl -s -o /dev/null "${HEADERS[@]}" --data-binary @"$WORK/body.json" "http://127.0.0.1:$P_RELAY/v1/messages"; done; }
say "warming up (300 requests)"
send 300
strace -f -p "$RELAY_PID" -e trace=network,read,write,writev -o "$WORK/strace.txt" 2>/dev/null &
STRACE=$!
sleep 2
say "$N requests under strace"
send "$N"
sleep 1
kill "$STRACE"; wait "$STRACE" 2>/dev/null || true
{
    echo "bench/syscalls.sh: $RELAY_DLL, $N streamed requests, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "syscall | count | per request"
    grep -oE '^[0-9]+ +[a-z_0-9]+\(' "$WORK/strace.txt" | awk '{print $2}' | tr -d '(' | sort | uniq -c |
        awk -v n="$N" '{printf "%s | %d | %.2f\n", $2, $1, $1/n}'
    echo "the relay's sends larger than 1 KB (bytes: count)"
    grep -E '^[0-9]+ +((sendto|sendmsg|write|writev)\(|<\.\.\. (sendto|sendmsg|write|writev) resumed>)' "$WORK/strace.txt" | grep -oE '= [0-9]+$' | awk '$2 > 1024 {print $2}' |
        sort -n | uniq -c | awk '{printf "%s: %s\n", $2, $1}'
} | tee "$OUT"
say "written: $OUT"
