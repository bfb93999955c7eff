#!/usr/bin/env bash
# What routing-stage classification costs per request, in instructions (issue 20 §6: "classification adds no
# measurable CPU per request on passthrough"): bench/callgrind-pair.sh with A=default (no routing.stages: the body is
# read without its stage facts) and B=staged (every stage configured, all on the one provider: the route is
# default's, the difference is reading the stage facts and classifying).
#
#   bench/stages-callgrind.sh                   2 runs of each variant, this tree's build
#   RUNS=2 REQUESTS=2000 bench/stages-callgrind.sh
#   RELAY=/tmp/old/cc-relay.dll bench/stages-callgrind.sh   another build (run it once per build to compare builds)
#   KEEP=/tmp/dumps bench/stages-callgrind.sh   also keep the dumps, with JIT method names, for callgrind_annotate
#
# Results: bench/out/callgrind-pair-default-staged-<stamp>.txt.
set -euo pipefail
: "${A:=default}" "${B:=staged}"
export A B
exec "$(dirname "$0")/callgrind-pair.sh" "$@"
