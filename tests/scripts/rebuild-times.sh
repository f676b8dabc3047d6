#!/usr/bin/env bash
# Incremental rebuild-and-test time for three one-line edits (issue 10):
# a message in a policy detector, a log message in the chat handler, and a
# message in the agent loop. Each edit changes one string literal, then
# times the commands a developer runs to see that edit tested, then the
# edit is reverted (and the tree rebuilt, untimed) before the next one.
#
# Usage: tests/scripts/rebuild-times.sh [TREE]   (TREE defaults to this
# checkout). It works on the single-crate layout before issue 10 too, so
# "before" and "after" are measured with the same script on one machine
# and one target directory. Run it on a warm target directory: it measures
# incremental builds, not the first one.
set -euo pipefail
tree=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$tree"

if [ -d server/policy ]; then
    layout=crates
    detector=server/policy/src/detectors/length.rs
    handler=server/warden/src/api/chat.rs
    agent_loop=server/agents/src/run_loop/mod.rs
    policy_test=(cargo test -q -p warden-policy)
    handler_test=(cargo test -q -p warden --bin warden)
    agent_test=(cargo test -q -p warden-agents)
else
    layout=single-crate
    detector=server/src/governance/detectors/length.rs
    handler=server/src/api/chat.rs
    agent_loop=server/src/agents/run_loop.rs
    # Everything was one library crate: its unit tests are the only ones
    # an edit there can run without starting a server.
    policy_test=(cargo test -q -p warden --lib)
    handler_test=(cargo test -q -p warden --lib)
    agent_test=(cargo test -q -p warden --lib)
fi
build=(cargo build -q --workspace --bins)

# Seconds taken by a command, which must succeed. Its output goes to a log.
timed() {
    local start end
    start=$(date +%s.%N)
    "$@" >>/tmp/rebuild-times.log 2>&1 || {
        echo "failed: $* (see /tmp/rebuild-times.log)" >&2
        exit 1
    }
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

measure() {
    local name=$1 file=$2 from=$3 to=$4
    shift 4
    grep -qF -- "$from" "$file" || {
        echo "$file no longer contains $from" >&2
        exit 1
    }
    "${build[@]}" >>/tmp/rebuild-times.log 2>&1
    "$@" --no-run >>/tmp/rebuild-times.log 2>&1
    sed -i "s/$from/$to/" "$file"
    local test_s build_s
    test_s=$(timed "$@")
    build_s=$(timed "${build[@]}")
    git checkout -q -- "$file"
    printf '| %s | `%s` | %s | %s |\n' "$name" "$*" "$test_s" "$build_s"
}

echo "layout: $layout ($(git rev-parse --short HEAD)), $(nproc) cores"
echo "| edit | test command | edit → tests done (s) | then \`${build[*]}\` (s) |"
echo "|---|---|---:|---:|"
measure "policy detector" "$detector" '{chars} characters' '{chars} chars' "${policy_test[@]}"
measure "API handler" "$handler" 'cannot record the decision on an interrupted stream' \
    'cannot record the decision of an interrupted stream' "${handler_test[@]}"
measure "agent loop" "$agent_loop" '{} tool calls in one step' '{} tool calls in a step' "${agent_test[@]}"
