//! Worst-case sizes of planner steps, and the bounds that keep every step
//! within its token budget.
//!
//! Constrained decoding only guarantees that a step parses if the model
//! reaches its end. A schema that accepts unbounded output (an integer with
//! no `maximum`, an array with no `maxItems`, a string with no `maxLength`)
//! lets a small model write digits until `max_tokens` and the step is cut
//! mid-JSON. So every part of a tool's argument schema gets a bound, chosen
//! so that the longest step the schema accepts fits the budget
//! ([`fit`]), and [`worst_case_bytes`] checks any schema independently.
//!
//! The cost model, and why it is an upper bound on tokens:
//! - a token is at least one byte of output (byte-level BPE, and
//!   SentencePiece with byte fallback), so `n` bytes take at most `n` tokens;
//! - steps have fixed separators: the embedded engine turns llguidance's
//!   flexible whitespace off, so separators are exactly `, ` and `: `
//!   (`warden_llm::JSON_ITEM_SEPARATOR`, `JSON_KEY_SEPARATOR`) and there is
//!   no other whitespace;
//! - a string character is at most [`CHAR_BYTES`] bytes: four in UTF-8, two
//!   as an escape (`\uXXXX` escapes are turned off, see
//!   `warden_llm::COMPACT_JSON`); `maxLength` counts characters;
//! - integers and numbers are as long as their longest allowed value
//!   (llguidance writes no leading zeros and, with bounds, no exponent);
//!   a number's decimals are bounded by a `multipleOf` of `10^-k`.

use serde_json::{Map, Value, json};
use warden_llm::{JSON_ITEM_SEPARATOR, JSON_KEY_SEPARATOR};

const ITEM_SEP: u64 = JSON_ITEM_SEPARATOR.len() as u64;
const KEY_SEP: u64 = JSON_KEY_SEPARATOR.len() as u64;

/// Most bytes one string character takes in a step.
pub const CHAR_BYTES: u64 = 4;
/// Longest string a field without `maxLength` gets (before fitting).
pub const MAX_STRING: u64 = 200;
/// Longest string inside an array without `maxLength` (tags, names, ids):
/// lists of long texts would take the budget from the other fields.
pub const MAX_ITEM_STRING: u64 = 50;
/// Most items an array without `maxItems` gets (before fitting).
pub const MAX_ITEMS: u64 = 16;
/// Integers without tighter bounds stay within what every JSON client
/// reads exactly (2^53 - 1); 64-bit formats included.
pub const SAFE_INTEGER: i64 = 9_007_199_254_740_991;
/// Decimals a number without `multipleOf` may have.
pub const NUMBER_DECIMALS: u32 = 6;
/// How many times one `$ref` may be expanded inside itself: recursive
/// types (trees) are unrolled this deep, then the recursion is cut where
/// the schema allows (an optional field, an array, a union branch).
const MAX_REF_DEPTH: usize = 3;
/// Schema parts after expanding references; beyond it a tool is refused.
const MAX_NODES: usize = 4096;

/// Why part of a schema has no finite worst case (or cannot be bounded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Unbounded {
    /// Where, as a JSON pointer into the arguments (`""` is the root).
    pub path: String,
    pub reason: String,
}

fn unbounded(path: &str, reason: impl Into<String>) -> Unbounded {
    Unbounded {
        path: if path.is_empty() {
            "arguments".into()
        } else {
            format!("arguments{path}")
        },
        reason: reason.into(),
    }
}

/// A tool's argument schema, bounded to fit a budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub schema: Value,
    /// The most bytes (so tokens) an accepted value takes.
    pub worst_case: u64,
}

/// Why a tool's arguments cannot fit a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    Unbounded(#[from] Unbounded),
    /// Even with every string and array at its smallest allowed size.
    #[error("its smallest complete call takes {needed} tokens, more than the {budget} left")]
    TooLarge { needed: u64, budget: u64 },
}

/// Bounds `schema` (a closed tool argument schema, `$defs` at its root)
/// so that everything it accepts takes at most `budget` bytes.
///
/// Integers and numbers get their ranges (from `format`, `minimum`,
/// `maximum`, else [`SAFE_INTEGER`]), numbers a `multipleOf`, references
/// are expanded in place, `oneOf` becomes `anyOf`, keywords llguidance
/// cannot compile are dropped (the tool still validates its arguments).
/// Then strings and arrays share the budget: every string gets at most the
/// same number of characters (short fields keep their own bound) and
/// arrays shrink with them, down to their `minLength`/`minItems`.
pub fn fit(schema: &Value, budget: u64) -> Result<Fitted, FitError> {
    let mut prep = Prepare {
        root: schema,
        nodes: 0,
        expanding: Vec::new(),
        string_default: MAX_STRING,
    };
    let prepared = prep
        .schema(schema, "")?
        .ok_or_else(|| unbounded("", "the schema accepts no value"))?;
    let cost = |level: u64| -> Result<(Value, u64), Unbounded> {
        let s = at_level(&prepared, level);
        let c = worst_case_bytes(&s)?;
        Ok((s, c))
    };
    let (smallest, needed) = cost(0)?;
    if needed > budget {
        return Err(FitError::TooLarge { needed, budget });
    }
    // The largest level that fits (cost grows with the level, and stops
    // growing once every string and array is at its cap: no level above
    // the budget in characters, or above MAX_STRING for arrays, changes
    // anything).
    let (mut lo, mut hi) = (0, budget.max(MAX_STRING));
    let mut best = (smallest, needed);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let (s, c) = cost(mid)?;
        if c <= budget {
            lo = mid;
            best = (s, c);
        } else {
            hi = mid - 1;
        }
    }
    Ok(Fitted {
        schema: best.0,
        worst_case: best.1,
    })
}

/// The longest value (in bytes of compact JSON) that `schema` accepts, or
/// where it is unbounded. References resolve from `schema`'s root.
pub fn worst_case_bytes(schema: &Value) -> Result<u64, Unbounded> {
    Cost {
        root: schema,
        expanding: Vec::new(),
    }
    .of(schema, "")
}

/// Keywords that only describe: kept out of the bounded schema.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "$defs",
    "definitions",
    "format",
    "nullable",
];

/// String formats llguidance compiles; others are dropped (`maxLength`
/// bounds the string either way).
const STRING_FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
];

struct Prepare<'a> {
    root: &'a Value,
    nodes: usize,
    /// The references being expanded, outermost first.
    expanding: Vec<String>,
    /// `maxLength` for strings that declare none, here.
    string_default: u64,
}

impl Prepare<'_> {
    /// The bounded form of `v`, or `None` when it accepts nothing (after
    /// cutting recursion).
    fn schema(&mut self, v: &Value, path: &str) -> Result<Option<Value>, Unbounded> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(unbounded(
                path,
                format!(
                    "the schema has over {MAX_NODES} parts once references are expanded; too large to offer"
                ),
            ));
        }
        let obj = match v {
            Value::Bool(true) => return Ok(Some(any_scalar())),
            Value::Bool(false) => return Ok(None),
            Value::Object(o) => o,
            _ => return Err(unbounded(path, "not a JSON schema")),
        };
        if let Some(r) = obj.get("$ref") {
            return self.reference(obj, r, path);
        }
        if let Some(values) = obj.get("enum") {
            return Ok(match values.as_array() {
                Some(vs) if !vs.is_empty() => Some(json!({ "enum": vs })),
                Some(_) => None,
                None => return Err(unbounded(path, "`enum` must be an array")),
            });
        }
        if let Some(c) = obj.get("const") {
            return Ok(Some(json!({ "const": c })));
        }
        // `oneOf` reads as `anyOf`: llguidance refuses overlapping `oneOf`
        // branches, and the tool checks exclusivity itself.
        let union = obj.get("anyOf").or_else(|| obj.get("oneOf"));
        let has_own = obj.keys().any(|k| {
            !ANNOTATIONS.contains(&k.as_str()) && !["anyOf", "oneOf", "allOf"].contains(&k.as_str())
        });
        let mut parts = Vec::new();
        if let Some(branches) = union {
            let branches = branches
                .as_array()
                .ok_or_else(|| unbounded(path, "`anyOf`/`oneOf` must be an array"))?;
            let mut kept = Vec::new();
            for (i, b) in branches.iter().enumerate() {
                if let Some(s) = self.schema(b, &format!("{path}/anyOf/{i}"))? {
                    kept.push(s);
                }
            }
            match kept.len() {
                0 => return Ok(None),
                1 => parts.push(kept.remove(0)),
                _ => parts.push(json!({ "anyOf": kept })),
            }
        }
        if let Some(all) = obj.get("allOf") {
            let all = all
                .as_array()
                .ok_or_else(|| unbounded(path, "`allOf` must be an array"))?;
            for (i, b) in all.iter().enumerate() {
                match self.schema(b, &format!("{path}/allOf/{i}"))? {
                    Some(s) => parts.push(s),
                    None => return Ok(None),
                }
            }
        }
        if has_own || parts.is_empty() {
            match self.typed(obj, path)? {
                Some(s) => parts.push(s),
                None => return Ok(None),
            }
        }
        Ok(Some(if parts.len() == 1 {
            parts.remove(0)
        } else {
            json!({ "allOf": parts })
        }))
    }

    fn reference(
        &mut self,
        obj: &Map<String, Value>,
        r: &Value,
        path: &str,
    ) -> Result<Option<Value>, Unbounded> {
        let r = r
            .as_str()
            .ok_or_else(|| unbounded(path, "`$ref` must be a string"))?;
        let target = r
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer))
            .ok_or_else(|| unbounded(path, format!("reference {r:?} does not resolve")))?;
        if self.expanding.iter().filter(|e| *e == r).count() >= MAX_REF_DEPTH {
            return Ok(None);
        }
        self.expanding.push(r.to_owned());
        let expanded = self.schema(target, path);
        self.expanding.pop();
        let Some(expanded) = expanded? else {
            return Ok(None);
        };
        // Keywords beside `$ref` constrain the value too.
        let mut rest = obj.clone();
        rest.remove("$ref");
        if rest.keys().all(|k| ANNOTATIONS.contains(&k.as_str())) {
            return Ok(Some(expanded));
        }
        Ok(self
            .schema(&Value::Object(rest), path)?
            .map(|r| json!({ "allOf": [expanded, r] })))
    }

    /// The keywords of one or more `type`s, each type its own branch.
    fn typed(&mut self, obj: &Map<String, Value>, path: &str) -> Result<Option<Value>, Unbounded> {
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(unbounded(path, "`type` must be a string or an array")),
            None => inferred_types(obj),
        };
        if types.is_empty() {
            return Ok(Some(any_scalar()));
        }
        let mut branches = Vec::new();
        for t in types {
            let b = match t {
                "null" => Some(json!({"type": "null"})),
                "boolean" => Some(json!({"type": "boolean"})),
                "string" => string(obj, self.string_default),
                "integer" => integer(obj),
                "number" => number(obj),
                "array" => self.array(obj, path)?,
                "object" => self.object(obj, path)?,
                other => return Err(unbounded(path, format!("unknown type {other:?}"))),
            };
            branches.extend(b);
        }
        Ok(match branches.len() {
            0 => None,
            1 => branches.pop(),
            _ => Some(json!({ "anyOf": branches })),
        })
    }

    fn array(&mut self, obj: &Map<String, Value>, path: &str) -> Result<Option<Value>, Unbounded> {
        let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let outer_default = self.string_default;
        self.string_default = MAX_ITEM_STRING;
        let items = self.items(obj, path);
        self.string_default = outer_default;
        let (prefix, items) = items?;
        let fixed = prefix.len() as u64;
        let cap = match &items {
            Some(_) => obj
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(MAX_ITEMS.max(fixed).max(min)),
            None => fixed,
        };
        if min > cap {
            return Ok(None);
        }
        let mut out = json!({"type": "array", "maxItems": cap});
        if min > 0 {
            out["minItems"] = json!(min);
        }
        if !prefix.is_empty() {
            out["prefixItems"] = Value::Array(prefix);
        }
        out["items"] = items.unwrap_or(Value::Bool(false));
        Ok(Some(out))
    }

    /// An array's tuple items (up to the first impossible one) and the
    /// schema of the rest (`None`: no more items can be written).
    #[allow(clippy::type_complexity)]
    fn items(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
    ) -> Result<(Vec<Value>, Option<Value>), Unbounded> {
        let mut prefix = Vec::new();
        if let Some(items) = obj.get("prefixItems").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                match self.schema(item, &format!("{path}/{i}"))? {
                    Some(s) => prefix.push(s),
                    // Items past an impossible one cannot be written.
                    None => break,
                }
            }
        }
        let items = match obj.get("items") {
            None => Some(any_scalar()),
            Some(items) => self.schema(items, &format!("{path}/items"))?,
        };
        Ok((prefix, items))
    }

    fn object(&mut self, obj: &Map<String, Value>, path: &str) -> Result<Option<Value>, Unbounded> {
        let empty = Map::new();
        let props = match obj.get("properties") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(unbounded(path, "`properties` must be an object")),
            None => &empty,
        };
        let open = match obj.get("additionalProperties") {
            None | Some(Value::Bool(false)) => false,
            Some(_) => true,
        };
        if open && props.is_empty() {
            return Err(unbounded(
                path,
                "a map with free-form keys cannot be bounded (its keys have no length limit); \
                 take a list of {key, value} objects or name the keys as properties",
            ));
        }
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out_props = Map::new();
        for (name, schema) in props {
            match self.schema(schema, &child_path(path, name))? {
                Some(s) => {
                    out_props.insert(name.clone(), s);
                }
                None if required.contains(&name.as_str()) => return Ok(None),
                // An optional field that cannot be written is left out.
                None => {}
            }
        }
        let required: Vec<&str> = required
            .into_iter()
            .filter(|r| out_props.contains_key(*r))
            .collect();
        // Extra keys, where a schema allowed them, are not offered: only the
        // listed properties can be bounded.
        Ok(Some(json!({
            "type": "object",
            "properties": out_props,
            "required": required,
            "additionalProperties": false,
        })))
    }
}

/// `path` extended by the property `name`, escaped as JSON pointers are.
fn child_path(path: &str, name: &str) -> String {
    format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"))
}

fn inferred_types(obj: &Map<String, Value>) -> Vec<&'static str> {
    let has = |keys: &[&str]| keys.iter().any(|k| obj.contains_key(*k));
    let mut t = Vec::new();
    if has(&["properties", "required", "additionalProperties"]) {
        t.push("object");
    }
    if has(&["items", "prefixItems", "maxItems", "minItems"]) {
        t.push("array");
    }
    if has(&["maxLength", "minLength", "pattern"]) {
        t.push("string");
    }
    if has(&[
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    ]) {
        t.push("number");
    }
    t
}

/// What a schema that accepts any value offers: any bounded scalar.
fn any_scalar() -> Value {
    json!({"anyOf": [
        {"type": "string", "maxLength": MAX_STRING},
        {"type": "number", "minimum": -SAFE_INTEGER, "maximum": SAFE_INTEGER, "multipleOf": decimal_step(NUMBER_DECIMALS)},
        {"type": "boolean"},
        {"type": "null"},
    ]})
}

fn string(obj: &Map<String, Value>, default_max: u64) -> Option<Value> {
    let min = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0);
    let cap = obj
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(default_max.max(min));
    if min > cap {
        return None;
    }
    let mut out = json!({"type": "string", "maxLength": cap});
    if min > 0 {
        out["minLength"] = json!(min);
    }
    if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
        out["pattern"] = json!(p);
    }
    if let Some(f) = obj
        .get("format")
        .and_then(Value::as_str)
        .filter(|f| STRING_FORMATS.contains(f))
    {
        out["format"] = json!(f);
    }
    Some(out)
}

/// The range of an integer `format` (schemars writes `uint32`, `int64`, ...).
fn format_range(format: Option<&str>) -> (i128, i128) {
    let bits = |s: &str| s.parse::<u32>().ok().filter(|b| (8..=128).contains(b));
    match format {
        Some(f) if f.starts_with("uint") => match bits(&f[4..]) {
            Some(b) => (0, (1i128 << b.min(126)) - 1),
            None => (0, i128::MAX),
        },
        Some(f) if f.starts_with("int") => match bits(&f[3..]) {
            Some(b) => (
                -(1i128 << (b.min(127) - 1)),
                (1i128 << (b.min(127) - 1)) - 1,
            ),
            None => (i128::MIN, i128::MAX),
        },
        _ => (i128::MIN, i128::MAX),
    }
}

/// `[lo, hi]` from `minimum`/`maximum` and their exclusive forms, as reals.
fn declared_range(obj: &Map<String, Value>) -> (f64, f64, bool, bool) {
    let num = |k: &str| obj.get(k).and_then(Value::as_f64);
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut lo_open, mut hi_open) = (false, false);
    if let Some(m) = num("minimum") {
        lo = m;
    }
    if let Some(m) = num("exclusiveMinimum").filter(|m| *m >= lo) {
        lo = m;
        lo_open = true;
    }
    if let Some(m) = num("maximum") {
        hi = m;
    }
    if let Some(m) = num("exclusiveMaximum").filter(|m| *m <= hi) {
        hi = m;
        hi_open = true;
    }
    (lo, hi, lo_open, hi_open)
}

fn integer(obj: &Map<String, Value>) -> Option<Value> {
    let (flo, fhi) = format_range(obj.get("format").and_then(Value::as_str));
    let (lo, hi, lo_open, hi_open) = declared_range(obj);
    let safe = i128::from(SAFE_INTEGER);
    let lo_int = if lo.is_finite() {
        let c = lo.ceil();
        (if lo_open && c == lo { c + 1.0 } else { c }).clamp(-1e38, 1e38) as i128
    } else {
        i128::MIN
    };
    let hi_int = if hi.is_finite() {
        let f = hi.floor();
        (if hi_open && f == hi { f - 1.0 } else { f }).clamp(-1e38, 1e38) as i128
    } else {
        i128::MAX
    };
    let lo = lo_int.max(flo).max(-safe);
    let hi = hi_int.min(fhi).min(safe);
    if lo > hi {
        return None;
    }
    let mut out = json!({"type": "integer", "minimum": lo as i64, "maximum": hi as i64});
    if let Some(m) = obj.get("multipleOf").filter(|m| {
        m.as_u64()
            .is_some_and(|m| m > 0 && m <= u64::from(u32::MAX))
    }) {
        out["multipleOf"] = m.clone();
    }
    Some(out)
}

fn number(obj: &Map<String, Value>) -> Option<Value> {
    let (lo, hi, lo_open, hi_open) = declared_range(obj);
    let safe = SAFE_INTEGER as f64;
    let (lo, hi) = (lo.max(-safe), hi.min(safe));
    if lo > hi || (lo == hi && (lo_open || hi_open)) {
        return None;
    }
    let step = match obj.get("multipleOf").and_then(Value::as_f64) {
        None => decimal_step(NUMBER_DECIMALS),
        // A step llguidance cannot compile is replaced by the default
        // one: the tool still checks its own `multipleOf`.
        Some(m) => match decimals_of(m) {
            Some(_) => json!(m),
            None => decimal_step(NUMBER_DECIMALS),
        },
    };
    let as_json = |x: f64| {
        if x.fract() == 0.0 {
            json!(x as i64)
        } else {
            json!(x)
        }
    };
    let mut out = json!({"type": "number", "multipleOf": step});
    let min_key = if lo_open && lo > -safe {
        "exclusiveMinimum"
    } else {
        "minimum"
    };
    let max_key = if hi_open && hi < safe {
        "exclusiveMaximum"
    } else {
        "maximum"
    };
    out[min_key] = as_json(lo);
    out[max_key] = as_json(hi);
    Some(out)
}

/// `10^-k` as the JSON number llguidance reads exactly.
fn decimal_step(k: u32) -> Value {
    match k {
        0 => json!(1),
        k => {
            let text = format!("0.{}1", "0".repeat(k as usize - 1));
            serde_json::from_str(&text).unwrap_or(json!(1))
        }
    }
}

/// How many decimals a multiple of `m` has, computed the way llguidance
/// reads `multipleOf` (multiplying by ten until whole; the result must fit
/// a `u32`), so a step llguidance refuses is never offered: `0.07`, say, is
/// not exact in binary and fails there.
fn decimals_of(m: f64) -> Option<u32> {
    if !(m.is_finite() && m > 0.0) {
        return None;
    }
    let (mut v, mut exp) = (m, 0);
    while v.fract() != 0.0 {
        if exp >= 12 {
            return None;
        }
        v *= 10.0;
        exp += 1;
    }
    (v <= f64::from(u32::MAX)).then_some(exp)
}

/// `prepared` with strings cut to `level` characters and arrays to the
/// same fraction of [`MAX_STRING`] of their items, both at least their
/// minimum.
fn at_level(prepared: &Value, level: u64) -> Value {
    let mut out = prepared.clone();
    fn walk(v: &mut Value, level: u64) {
        let Value::Object(o) = v else { return };
        let min = |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
        if o.get("type") == Some(&json!("string"))
            && let Some(cap) = o.get("maxLength").and_then(Value::as_u64)
        {
            let m = cap.min(level).max(min(o, "minLength"));
            o.insert("maxLength".into(), json!(m));
        }
        if o.get("type") == Some(&json!("array"))
            && let Some(cap) = o.get("maxItems").and_then(Value::as_u64)
        {
            let fixed = o
                .get("prefixItems")
                .and_then(Value::as_array)
                .map_or(0, |p| p.len() as u64);
            let share = (cap.saturating_mul(level)).div_ceil(MAX_STRING).min(cap);
            let m = share.max(min(o, "minItems")).max(fixed.min(cap));
            o.insert("maxItems".into(), json!(m));
        }
        for key in ["anyOf", "allOf", "prefixItems"] {
            if let Some(Value::Array(items)) = o.get_mut(key) {
                items.iter_mut().for_each(|c| walk(c, level));
            }
        }
        if let Some(items) = o.get_mut("items") {
            walk(items, level);
        }
        if let Some(Value::Object(props)) = o.get_mut("properties") {
            props.values_mut().for_each(|c| walk(c, level));
        }
    }
    walk(&mut out, level);
    out
}

struct Cost<'a> {
    root: &'a Value,
    expanding: Vec<String>,
}

impl Cost<'_> {
    fn of(&mut self, v: &Value, path: &str) -> Result<u64, Unbounded> {
        let obj = match v {
            Value::Bool(false) => return Ok(0),
            Value::Bool(true) => return Err(unbounded(path, "accepts any JSON value")),
            Value::Object(o) => o,
            _ => return Err(unbounded(path, "not a JSON schema")),
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            if self.expanding.iter().any(|e| e == r) {
                return Err(unbounded(path, format!("recursive reference {r:?}")));
            }
            let target = r
                .strip_prefix('#')
                .and_then(|p| self.root.pointer(p))
                .ok_or_else(|| unbounded(path, format!("reference {r:?} does not resolve")))?;
            self.expanding.push(r.to_owned());
            let c = self.of(target, path);
            self.expanding.pop();
            return c;
        }
        // Constants are written as llguidance writes them: with the fixed
        // separators when they are lists or objects.
        if let Some(values) = obj.get("enum").and_then(Value::as_array) {
            return Ok(values.iter().map(written_len).max().unwrap_or(0));
        }
        if let Some(c) = obj.get("const") {
            return Ok(written_len(c));
        }
        // A value satisfies every part of the schema, so the cheapest
        // bounded part bounds it.
        let mut bounds: Vec<Result<u64, Unbounded>> = Vec::new();
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                let mut max = 0;
                let mut err = None;
                for (i, b) in branches.iter().enumerate() {
                    match self.of(b, &format!("{path}/{key}/{i}")) {
                        Ok(c) => max = max.max(c),
                        Err(e) => err = Some(e),
                    }
                }
                bounds.push(err.map_or(Ok(max), Err));
            }
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for (i, b) in all.iter().enumerate() {
                bounds.push(self.of(b, &format!("{path}/allOf/{i}")));
            }
        }
        let typed = obj.contains_key("type") || bounds.is_empty();
        if typed {
            bounds.push(self.typed(obj, path));
        }
        let mut first_err = None;
        let mut best: Option<u64> = None;
        for b in bounds {
            match b {
                Ok(c) => best = Some(best.map_or(c, |x| x.min(c))),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (best, first_err) {
            (Some(c), _) => Ok(c),
            (None, Some(e)) => Err(e),
            (None, None) => Err(unbounded(path, "accepts any JSON value")),
        }
    }

    fn typed(&mut self, obj: &Map<String, Value>, path: &str) -> Result<u64, Unbounded> {
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return Err(unbounded(path, "accepts any JSON value (no `type`)")),
        };
        let mut max = 0;
        for t in types {
            let c = match t {
                "null" => 4,
                "boolean" => 5,
                "string" => {
                    let n = obj
                        .get("maxLength")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| unbounded(path, "a string without `maxLength`"))?;
                    2 + CHAR_BYTES.saturating_mul(n)
                }
                "integer" => {
                    let (lo, hi) = bounded_range(obj, path, "an integer")?;
                    digits(lo).max(digits(hi))
                }
                "number" => {
                    let (lo, hi) = bounded_range(obj, path, "a number")?;
                    let decimals = obj
                        .get("multipleOf")
                        .and_then(Value::as_f64)
                        .and_then(decimals_of)
                        .ok_or_else(|| {
                            unbounded(
                                path,
                                "a number without a `multipleOf` of 10^-k has unbounded decimals",
                            )
                        })?;
                    // A negative number above -1 has a sign its integer
                    // part does not show ("-0.5").
                    let int =
                        (digits(lo) + u64::from(lo < 0.0 && lo.trunc() == 0.0)).max(digits(hi));
                    int + if decimals > 0 {
                        1 + u64::from(decimals)
                    } else {
                        0
                    }
                }
                "array" => self.array(obj, path)?,
                "object" => self.object(obj, path)?,
                other => return Err(unbounded(path, format!("unknown type {other:?}"))),
            };
            max = max.max(c);
        }
        Ok(max)
    }

    fn array(&mut self, obj: &Map<String, Value>, path: &str) -> Result<u64, Unbounded> {
        let prefix: Vec<&Value> = obj
            .get("prefixItems")
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let items = obj.get("items");
        let max = match (obj.get("maxItems").and_then(Value::as_u64), items) {
            (Some(m), _) => m,
            (None, Some(Value::Bool(false))) => prefix.len() as u64,
            (None, _) => return Err(unbounded(path, "an array without `maxItems`")),
        };
        if max == 0 {
            return Ok(2);
        }
        let mut total = 2 + (max - 1) * ITEM_SEP;
        for (i, p) in prefix.iter().take(max as usize).enumerate() {
            total += self.of(p, &format!("{path}/{i}"))?;
        }
        let rest = max.saturating_sub(prefix.len() as u64);
        if rest > 0 {
            let item = match items {
                Some(i) => self.of(i, &format!("{path}/items"))?,
                None => return Err(unbounded(path, "array items accept any JSON value")),
            };
            total = total.saturating_add(rest.saturating_mul(item));
        }
        Ok(total)
    }

    fn object(&mut self, obj: &Map<String, Value>, path: &str) -> Result<u64, Unbounded> {
        if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(unbounded(
                path,
                "an object that accepts keys beyond its properties (needs `additionalProperties: false`)",
            ));
        }
        let Some(props) = obj.get("properties").and_then(Value::as_object) else {
            return Ok(2);
        };
        let mut total = 2 + (props.len() as u64).saturating_sub(1) * ITEM_SEP;
        for (name, schema) in props {
            total = total
                .saturating_add(json_len(&json!(name)) + KEY_SEP)
                .saturating_add(self.of(schema, &child_path(path, name))?);
        }
        Ok(total)
    }
}

/// A number's declared range, when both ends are given (else its digits
/// are unbounded).
fn bounded_range(
    obj: &Map<String, Value>,
    path: &str,
    what: &str,
) -> Result<(f64, f64), Unbounded> {
    let (lo, hi, _, _) = declared_range(obj);
    if !lo.is_finite() || !hi.is_finite() {
        return Err(unbounded(
            path,
            format!("{what} needs both `minimum` and `maximum` to bound its digits"),
        ));
    }
    Ok((lo, hi))
}

/// Bytes of a constant written with the fixed separators.
fn written_len(v: &Value) -> u64 {
    match v {
        Value::Array(items) => {
            2 + items.iter().map(written_len).sum::<u64>()
                + (items.len() as u64).saturating_sub(1) * ITEM_SEP
        }
        Value::Object(fields) => {
            2 + fields
                .iter()
                .map(|(k, v)| json_len(&json!(k)) + KEY_SEP + written_len(v))
                .sum::<u64>()
                + (fields.len() as u64).saturating_sub(1) * ITEM_SEP
        }
        scalar => json_len(scalar),
    }
}

fn json_len(v: &Value) -> u64 {
    serde_json::to_string(v).map_or(u64::MAX, |s| s.len() as u64)
}

/// Characters of the integer part of `x` written out, with its sign.
fn digits(x: f64) -> u64 {
    // Bounds are within 2^53 here, so the cast is exact.
    (x.trunc() as i128).to_string().len() as u64
}

#[cfg(test)]
mod tests;
