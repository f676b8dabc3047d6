//! The first-party coding plugin: a Rhai interpreter compiled into the
//! component, static code review, LLM explanations, JSON tools and diff
//! statistics.

mod diff;
mod explain;
mod json_tools;
mod review;
mod script;

use warden_sdk::{Effect, Plugin, Tool};

pub struct Coding;

impl Plugin for Coding {
    const ID: &'static str = "warden.coding";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new(
                "run_script",
                "Run a Rhai script and return what it printed and its final value. Endless loops and runaway allocations stop with a limit error.",
                Effect::Pure,
                script::run,
            ),
            Tool::new(
                "review_code",
                "Static review: hard-coded secrets, TODO/FIXME, very long functions, unsafe/eval-style patterns, with line numbers.",
                Effect::Pure,
                review::review,
            ),
            Tool::new(
                "explain_code",
                "Explain what a piece of code does, with the LLM.",
                Effect::Reads,
                explain::explain,
            ),
            Tool::new(
                "format_json",
                "Pretty-print (or minify) JSON text, optionally sorting keys.",
                Effect::Pure,
                json_tools::format,
            ),
            Tool::new(
                "validate_json",
                "Validate a JSON document against a JSON Schema; lists every violation with its path.",
                Effect::Pure,
                json_tools::validate,
            ),
            Tool::new(
                "diff_stats",
                "Files, hunks, added and removed lines of a unified diff.",
                Effect::Pure,
                diff::stats,
            ),
        ]
    }
}

warden_sdk::export_plugin!(Coding);
