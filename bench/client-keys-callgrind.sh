#!/usr/bin/env bash
# What the client-key checks and budget settlement cost per request, in instructions (issue 21 §6): the relay under
# valgrind's callgrind, counted only while it serves a fixed number of requests after a warm-up, for two configs —
# `noclients` (no clients) and `clients` (the benchmark's x-api-key is a client key with RPM/ITPM/OTPM limits,
# max_concurrent and day/week/month/total/by-model budgets, so every request is checked, reserved and settled); the
# ledger is off in both. Instruction counts do not depend on the machine's load (wall-clock figures on this shared
# 2-core machine do, by far more than 2 %), so the ratio is repeatable where bench/paired.sh's is not.
#
#   bench/client-keys-callgrind.sh              2 runs of each variant (interleaved), 2,000 measured requests each
#   RUNS=3 REQUESTS=4000 bench/client-keys-callgrind.sh
#   KEEP=/tmp/dumps bench/client-keys-callgrind.sh   also keep the dumps, for callgrind_annotate
#   A=default B=default RELAY_A=/tmp/old/cc-relay.dll bench/client-keys-callgrind.sh   two builds, one variant
#
# Tiered compilation is off (DOTNET_TieredCompilation=0: every method is compiled once, fully optimised, during the
# warm-up), so the measured window holds the steady state, not the JIT. The count includes every thread of the
# relay (Kestrel, the accounting thread, GC). Needs: valgrind, nginx, curl. Everything listens on 127.0.0.1; every
# process is stopped on exit (by PID). Results: bench/out/callgrind-pair-noclients-clients-<stamp>.txt (the work is
# bench/callgrind-pair.sh's, with A=noclients B=clients).
set -euo pipefail
: "${A:=noclients}" "${B:=clients}"
export A B
exec "$(dirname "$0")/callgrind-pair.sh" "$@"
