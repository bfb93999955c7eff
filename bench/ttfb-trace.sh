#!/usr/bin/env bash
# Where a relayed stream's time to first event goes, hop by hop: the kernel's own timestamps of every socket read and
# write of the client (LoadGen), the relay and the upstream (FakeUpstream), recorded with perf tracepoints while one
# stream at a time goes through the relay (the shape of bench/ttfb.sh's single-stream figure, one target only).
#
#   bench/ttfb-trace.sh                 default relay, 400 rounds after a long warm-up (~2 min)
#   VARIANT=bedrock bench/ttfb-trace.sh     another bench/lib.sh relay variant
#   RELAY=/tmp/old/cc-relay.dll bench/ttfb-trace.sh     another build
#   ENV_R="NAME=VALUE ..." bench/ttfb-trace.sh          extra environment variables for the relay
#
# Per stream, from the client's request write to its read of message_start, in the order the bytes travel:
#   client write → relay's socket thread wakes → relay reads the request → relay's first write upstream (the relay's
#   own work on the request: Kestrel, auth, facts, plan, HttpClient) → its last write upstream (SocketsHttpHandler
#   writes a body larger than its 4 KiB buffer in two sends) → upstream reads → upstream writes its head and first
#   events → relay reads them → relay writes to the client (peek, headers, first events) → client reads.
# Reported: p25/p50/p75 of each segment over the streams, in µs. Segments are wall-clock: on a loaded machine the
# wakes include waiting for a core. Also: how often each relay thread was switched out inside the windows (a thread
# spinning with sched_yield shows up there).
#
# Needs: perf with syscall and sched tracepoints (root, or perf_event_paranoid ≤ 1), python3. Everything listens on
# 127.0.0.1; every process is stopped on exit (by PID). Report: bench/out/ttfb-trace-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
: "${ROUNDS:=600}" "${WARM:=1500}" "${SECS:=8}" "${VARIANT:=default}"
for tool in perf python3 curl; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done
perf list 'syscalls:sys_enter_sendto' 2>/dev/null | grep -q sendto || { echo "perf cannot see syscall tracepoints here" >&2; exit 1; }

bench_scratch ccttfbtrace
OUT="$BENCH/out/ttfb-trace-$(date -u +%Y%m%dT%H%M%SZ).txt"
cd "$ROOT"
[[ -n ${RELAY:-} ]] || build_tools src/CcRelay.Cli
[[ -f "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" && -f "$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll" ]] || build_tools bench/LoadGen bench/FakeUpstream
RELAY_DLL="${RELAY:-$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
read -r P_UP P_RELAY <<<"$("${LOADGEN[@]}" ports 2)"
start_fake "$WORK/fake.log" "$P_UP"
FAKE=${PIDS[-1]}
write_relay_config "$WORK/relay.yaml" "$P_RELAY" "$P_UP" "$VARIANT"
mapfile -t EXTRA_ENV < <(tr ' ' '\n' <<<"${ENV_R:-}" | grep . || true)
env "${EXTRA_ENV[@]}" dotnet "$RELAY_DLL" serve --config "$WORK/relay.yaml" >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
wait_listen "$P_UP"; wait_relay "$P_RELAY"
T=(--url "http://127.0.0.1:$P_RELAY/v1/messages" --label relay --body "$BENCH/payloads/messages.template.json"
    --headers "$BENCH/payloads/headers.txt" --deltas 3 --interval-ms 5 --first-us 0)
say "warming up ($WARM rounds of 8 streams: the relay's tiered JIT settles)"
"${LOADGEN[@]}" ttfb "${T[@]}" --concurrency 8 --rounds "$WARM" --warmup-rounds 5 --tag warm >/dev/null 2>&1 || true
say "tracing $SECS s of one stream at a time"
"${LOADGEN[@]}" ttfb "${T[@]}" --concurrency 1 --rounds "$ROUNDS" --warmup-rounds 20 --tag traced >/dev/null 2>&1 &
LG=$!
PIDS+=("$LG")
sleep 4
mkdir -p "$WORK/perf"  # not next to relay.yaml: the relay watches its config's directory
perf record -q -k mono -o "$WORK/perf/perf.data" -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_exit_recvfrom,syscalls:sys_exit_recvmsg,syscalls:sys_exit_read,syscalls:sys_exit_readv,syscalls:sys_exit_epoll_wait,syscalls:sys_exit_epoll_pwait,sched:sched_wakeup,sched:sched_switch' \
    -p "$RELAY_PID,$FAKE,$LG" -- sleep "$SECS" 2>/dev/null || true
wait "$LG" || true
perf script -i "$WORK/perf/perf.data" -F comm,pid,tid,cpu,time,event,trace >"$WORK/trace.txt" 2>/dev/null
{
    echo "bench/ttfb-trace.sh: variant $VARIANT, ${RELAY:-this build}${ENV_R:+, $ENV_R}; $WARM warm-up rounds of 8, then one stream at a time"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (+ uncommitted changes)'), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    python3 - "$WORK/trace.txt" "$RELAY_PID" "$FAKE" "$LG" <<'PY'
import collections, re, statistics, sys
path, relay, fake, client = sys.argv[1:5]
rx = re.compile(r'^\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')
ev = []
for line in open(path):
    m = rx.match(line)
    if not m:
        continue
    comm, pid, tid, _, t, e, rest = m.groups()
    t = float(t) * 1e6
    if 'sys_enter_send' in e or 'sys_enter_write' in e:
        n = re.search(r'(?:len|count): 0x([0-9a-f]+)', rest)
        ev.append((t, pid, 'send', int(n.group(1), 16) if n else -1, comm))
    elif 'sys_exit_recv' in e or 'sys_exit_read' in e:
        v = int(rest.strip(), 16)
        v = v - 2**64 if v >= 2**63 else v
        if v > 0:
            ev.append((t, pid, 'recv', v, comm))
    elif 'epoll' in e:
        ev.append((t, pid, 'wake', 0, comm))
    elif e.endswith('sched_switch') and pid == relay:
        ev.append((t, pid, 'switch', 0, comm))
ev.sort()
def after(i, pid, kind):
    while i < len(ev) and not (ev[i][1] == pid and ev[i][2] == kind):
        i += 1
    return i if i < len(ev) else None
names = ['client write -> relay wakes', 'relay wakes -> reads the request', 'relay reads -> 1st write upstream (relay work)',
         'relay 1st -> last write upstream', 'relay last write -> upstream reads', 'upstream reads -> writes head+events',
         'upstream writes -> relay reads', 'relay reads -> writes to client (relay work)', 'relay writes -> client reads',
         'TOTAL time to first event']
segs = {n: [] for n in names}
switches = collections.Counter()
windows = 0
i = 0
while True:
    # the client's request: its one large write (headers + the 5.6 KB body)
    while i < len(ev) and not (ev[i][1] == client and ev[i][2] == 'send' and ev[i][3] > 4096):
        i += 1
    if i >= len(ev):
        break
    t0 = ev[i][0]
    try:
        a = after(i, relay, 'wake'); b = after(i, relay, 'recv'); c = after(b, relay, 'send')
        d = after(c, fake, 'recv')
        last = max(ev[q][0] for q in range(c, d) if ev[q][1] == relay and ev[q][2] == 'send')
        e_ = after(d, fake, 'send'); f = after(e_, relay, 'recv'); g = after(f, relay, 'send'); h = after(g, client, 'recv')
        marks = [ev[a][0], ev[b][0], ev[c][0], last, ev[d][0], ev[e_][0], ev[f][0], ev[g][0], ev[h][0]]
    except (TypeError, ValueError):
        break
    if marks[-1] - t0 < 5000:
        prev = t0
        for n, m in zip(names, marks):
            segs[n].append(m - prev)
            prev = m
        segs[names[-1]].append(marks[-1] - t0)
        windows += 1
        for q in range(i, h):
            if ev[q][2] == 'switch':
                switches[ev[q][4]] += 1
    i = h + 1
print(f'streams traced: {windows}; µs per segment, p25 / p50 / p75')
for n in names:
    v = sorted(segs[n])
    if v:
        print(f'  {n:48s} {v[len(v) // 4]:7.1f} {statistics.median(v):7.1f} {v[3 * len(v) // 4]:7.1f}')
print('relay threads switched out inside the windows, per stream:')
for comm, k in switches.most_common(6):
    print(f'  {comm:20s} {k / max(1, windows):.2f}')
PY
} | tee "$OUT"
say "written: $OUT"
