#!/usr/bin/env bash
# Checks the crate graph's invariants (ARCHITECTURE.md, "Invariants") on the
# dependencies Cargo actually resolves: each line names a crate and what it
# must never depend on, directly or through another crate.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail=0
forbid() {
    local crate=$1
    shift
    local deps
    deps=$(cargo tree --locked -p "$crate" -e normal,build --prefix none --format '{p}' |
        awk '{print $1}' | sort -u)
    for bad in "$@"; do
        if grep -qx -- "$bad" <<<"$deps"; then
            echo "layering: $crate depends on $bad ($(cargo tree --locked -p "$crate" -e normal,build -i "$bad" --prefix none --format '{p}' 2>/dev/null | sed -n 2p | awk '{print "via " $1}'))"
            fail=1
        fi
    done
}

ENGINES="mistralrs mistralrs-core candle-core wasmtime async-openai"
SERVING="axum hyper reqwest"

# The policy engine never sees the network, the database or a model.
forbid warden-policy tokio sea-orm $ENGINES $SERVING warden-db warden-llm
# The shared LLM types know no engine and no database.
forbid warden-llm sea-orm $ENGINES $SERVING
# The database crate is only the schema and its entities.
forbid warden-db $ENGINES $SERVING warden-llm warden-policy
# Governance reaches a model only through its Judge trait, and no network.
forbid warden-governance $ENGINES $SERVING warden-llm warden-plugin-host warden-agents
# The plugin host runs wasm; models come through its LlmProvider trait.
forbid warden-plugin-host mistralrs mistralrs-core candle-core async-openai axum \
    warden-llm-embedded warden-llm-remote warden-governance warden-agents
# Agents reach tools through ToolHost and models through Backend.
forbid warden-agents $ENGINES $SERVING warden-plugin-host warden-llm-embedded warden-llm-remote
# Slack's protocol crate is pure: no runtime, no network, no database, no model.
forbid warden-slack tokio sea-orm $ENGINES $SERVING warden-db warden-llm warden-agents
# Email's wire formats are pure like Slack's.
forbid warden-email tokio sea-orm $ENGINES $SERVING warden-db warden-llm warden-agents warden-channels
# The channel core speaks no channel's protocol and no network: channels
# plug in through its Channel trait; it reaches models only through agents.
forbid warden-channels $ENGINES $SERVING warden-slack warden-email warden-plugin-host warden-llm-embedded warden-llm-remote
# Each engine crate is only that engine.
forbid warden-llm-embedded wasmtime async-openai axum sea-orm warden-plugin-host warden-agents
forbid warden-llm-remote mistralrs wasmtime axum sea-orm warden-plugin-host warden-agents

if [ "$fail" = 0 ]; then
    echo "layering: the crate graph keeps its invariants"
fi
exit "$fail"
