#!/usr/bin/env bash
# What shared state on PostgreSQL costs per request, in instructions (issue 21 §6, where bench/shared-state.sh's paired
# CPU ratio is too noisy on this shared machine to say why): bench/callgrind-pair.sh with A=clients (the client-key
# relay on local state) and B=shared (the same relay with state.postgres; PostgreSQL started as bench/shared-state.sh
# starts it). The measured window of B includes everything the shared-state loop does meanwhile (flushes, NOTIFY
# wake-ups, timers), since it runs in the same process.
#
#   bench/shared-state-callgrind.sh                      2 runs of each variant, 2,000 measured requests each
#   RUNS=3 REQUESTS=4000 bench/shared-state-callgrind.sh
#   KEEP=/tmp/dumps bench/shared-state-callgrind.sh      also keep the dumps, with the JIT's method names resolved
#                                                        (callgrind_annotate --inclusive=yes KEEP/cg.shared.* …)
#   RELAY=/tmp/before/cc-relay.dll bench/shared-state-callgrind.sh  another build of the relay
#
# Results: bench/out/callgrind-pair-clients-shared-<stamp>.txt.
set -euo pipefail
: "${A:=clients}" "${B:=shared}"
export A B
exec "$(dirname "$0")/callgrind-pair.sh" "$@"
