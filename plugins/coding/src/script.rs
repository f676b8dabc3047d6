//! `run_script`: Rhai compiled into this component. The interpreter's own
//! limits (operations, wall clock, string/array/map sizes, call depth) turn
//! endless loops and runaway allocations into clean errors; the host's
//! memory cap and deadline stay as the outer fence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult};
use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError};

const DEFAULT_TIMEOUT_MS: u64 = 2_000;
const MAX_TIMEOUT_MS: u64 = 20_000;
const DEFAULT_MAX_OPERATIONS: u64 = 10_000_000;
const MAX_STRING_BYTES: usize = 1 << 20;
const MAX_COLLECTION_LEN: usize = 100_000;
const MAX_PRINTED_LINES: usize = 1000;
const MAX_SOURCE_BYTES: usize = 64 * 1024;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptArgs {
    /// Rhai source; the value of the last expression is returned.
    source: String,
    /// Wall-clock budget in milliseconds (default 2000, at most 20000).
    timeout_ms: Option<u64>,
    /// Interpreter operation budget (default 10,000,000).
    max_operations: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ScriptOutput {
    /// The final value, as JSON.
    pub result: serde_json::Value,
    /// Lines written with print() or debug().
    pub output: Vec<String>,
    pub operations: u64,
    pub elapsed_ms: u64,
}

pub fn run(_: &Context, a: ScriptArgs) -> Result<ScriptOutput, ToolError> {
    if a.source.len() > MAX_SOURCE_BYTES {
        return Err(ToolError::invalid(format!(
            "source is longer than {MAX_SOURCE_BYTES} bytes"
        )));
    }
    let timeout = Duration::from_millis(
        a.timeout_ms
            .unwrap_or(DEFAULT_TIMEOUT_MS)
            .clamp(1, MAX_TIMEOUT_MS),
    );
    let max_ops = a
        .max_operations
        .unwrap_or(DEFAULT_MAX_OPERATIONS)
        .clamp(1, 1_000_000_000);
    execute(&a.source, timeout, max_ops)
}

pub fn execute(source: &str, timeout: Duration, max_ops: u64) -> Result<ScriptOutput, ToolError> {
    let output = Arc::new(Mutex::new(Vec::<String>::new()));
    let ops_seen = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let mut engine = Engine::new();
    engine
        .set_max_operations(max_ops)
        .set_max_string_size(MAX_STRING_BYTES)
        .set_max_array_size(MAX_COLLECTION_LEN)
        .set_max_map_size(MAX_COLLECTION_LEN)
        .set_max_call_levels(64)
        .set_max_expr_depths(64, 32)
        .set_max_variables(10_000)
        .set_max_functions(1_000);
    // std's sleep() would block the component outside the interpreter's checks.
    engine.register_fn("sleep", |_: i64| ());
    engine.register_fn("sleep", |_: f64| ());
    let sink = output.clone();
    engine.on_print(move |s| push_line(&sink, s.to_owned()));
    let sink = output.clone();
    engine.on_debug(move |s, _, pos| push_line(&sink, format!("[debug {pos}] {s}")));
    let seen = ops_seen.clone();
    engine.on_progress(move |ops| {
        if let Ok(mut s) = seen.lock() {
            *s = ops;
        }
        (start.elapsed() > timeout).then(|| Dynamic::from("timeout"))
    });

    let result = engine.eval::<Dynamic>(source);
    let operations = ops_seen.lock().map(|s| *s).unwrap_or(0);
    let elapsed_ms = start.elapsed().as_millis() as u64;
    let output = output.lock().map(|o| o.clone()).unwrap_or_default();
    match result {
        Ok(value) => {
            let result = serde_json::to_value(&value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            Ok(ScriptOutput {
                result,
                output,
                operations,
                elapsed_ms,
            })
        }
        Err(e) => Err(classify(*e, timeout, max_ops)),
    }
}

fn push_line(sink: &Mutex<Vec<String>>, line: String) {
    if let Ok(mut lines) = sink.lock()
        && lines.len() < MAX_PRINTED_LINES
    {
        lines.push(line.chars().take(10_000).collect());
    }
}

fn classify(e: EvalAltResult, timeout: Duration, max_ops: u64) -> ToolError {
    match e {
        EvalAltResult::ErrorTerminated(_, pos) => ToolError::LimitExceeded(format!(
            "script timed out after {} ms at {pos} (endless loop?)",
            timeout.as_millis()
        )),
        EvalAltResult::ErrorTooManyOperations(pos) => ToolError::LimitExceeded(format!(
            "script exceeded {max_ops} operations at {pos} (endless loop?)"
        )),
        EvalAltResult::ErrorDataTooLarge(what, pos) => ToolError::LimitExceeded(format!(
            "script memory limit: {what} exceeds the limit at {pos} (strings {MAX_STRING_BYTES} bytes, arrays and maps {MAX_COLLECTION_LEN} items)"
        )),
        EvalAltResult::ErrorStackOverflow(pos) => {
            ToolError::LimitExceeded(format!("script recursion too deep at {pos}"))
        }
        EvalAltResult::ErrorTooManyVariables(pos) => {
            ToolError::LimitExceeded(format!("too many variables at {pos}"))
        }
        EvalAltResult::ErrorParsing(kind, pos) => {
            ToolError::InvalidArguments(format!("syntax error at {pos}: {kind}"))
        }
        other => ToolError::Failed(format!("script error: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(src: &str) -> Result<ScriptOutput, ToolError> {
        execute(src, Duration::from_millis(500), 1_000_000)
    }

    #[test]
    fn prints_and_returns_values() {
        let out = go("print(\"hi\"); let x = [1, 2, 3]; x.len() * 2").unwrap();
        assert_eq!(out.output, ["hi"]);
        assert_eq!(out.result, serde_json::json!(6));
    }

    #[test]
    fn endless_loops_and_big_values_hit_limits() {
        for src in [
            "loop {}",
            "let s = \"x\"; loop { s += s; }",
            "let a = []; loop { a.push(1); }",
        ] {
            let err = go(src).unwrap_err();
            assert!(matches!(err, ToolError::LimitExceeded(_)), "{src}: {err:?}");
        }
        assert!(matches!(
            go("let = 1").unwrap_err(),
            ToolError::InvalidArguments(_)
        ));
        assert!(
            matches!(go("throw \"boom\"").unwrap_err(), ToolError::Failed(m) if m.contains("boom"))
        );
    }
}
