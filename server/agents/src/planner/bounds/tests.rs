//! The bounds, checked three ways: data-driven cases of what each kind of
//! schema becomes; real `#[derive(JsonSchema)]` output as plugins offer it;
//! and a property test over generated schemas shaped like schemars output,
//! where llguidance itself (the grammar engine the embedded model decodes
//! with) must accept the longest value the bounded schema allows, that value
//! must fit the computed worst case, and the worst case must fit the budget.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::planner::{Offer, step_schema};

fn root_schema<T: schemars::JsonSchema>() -> Value {
    // What the SDK's `tool()` sends (sdk/src/tool.rs).
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

fn fitted(schema: Value, budget: u64) -> Value {
    fit(&warden_llm::close_schema(schema), budget)
        .unwrap_or_else(|e| panic!("{e}"))
        .schema
}

// ---------- llguidance as the judge ----------

fn factory() -> &'static llguidance::ParserFactory {
    static F: OnceLock<llguidance::ParserFactory> = OnceLock::new();
    F.get_or_init(|| {
        let env: toktrie::TokEnv = toktrie::ApproximateTokEnv::single_byte_env();
        let mut f = llguidance::ParserFactory::new_simple(&env).expect("parser factory");
        f.set_stderr_log_level(0);
        f
    })
}

/// Whether llguidance, compiling `schema` with the options the embedded
/// engine uses, accepts exactly `text` (one byte per token).
fn llguidance_accepts(schema: &Value, text: &str) -> Result<bool, String> {
    let grammar = llguidance::api::TopLevelGrammar::from_json_schema(
        warden_llm::compact_json_schema(schema.clone()),
    );
    let parser = factory()
        .create_parser(grammar)
        .map_err(|e| format!("llguidance refused the schema: {e}"))?;
    let mut m = llguidance::Matcher::new(Ok(parser));
    for b in text.bytes() {
        if m.is_stopped() {
            // Complete, and nothing may follow.
            return Ok(false);
        }
        let mask = m.compute_mask().map_err(|e| e.to_string())?;
        if !mask.is_allowed(u32::from(b)) {
            return Ok(false);
        }
        m.consume_token(u32::from(b)).map_err(|e| e.to_string())?;
    }
    m.is_accepting().map_err(|e| e.to_string())
}

/// The longest compact JSON text `schema` accepts (strings of 4-byte
/// characters), or `None` where it cannot tell (patterns, `allOf`).
fn longest(schema: &Value) -> Option<String> {
    let o = schema.as_object()?;
    if let Some(values) = o.get("enum").and_then(Value::as_array) {
        return values.iter().map(spaced).max_by_key(String::len);
    }
    if let Some(c) = o.get("const") {
        return Some(spaced(c));
    }
    if let Some(branches) = o.get("anyOf").and_then(Value::as_array) {
        let best = branches
            .iter()
            .max_by_key(|b| worst_case_bytes(b).unwrap_or(0))?;
        return longest(best);
    }
    let max = |k: &str| o.get(k).and_then(Value::as_u64);
    match o.get("type")?.as_str()? {
        "null" => Some("null".into()),
        "boolean" => Some("false".into()),
        "string" if o.contains_key("pattern") || o.contains_key("format") => None,
        "string" => Some(format!("\"{}\"", "😀".repeat(max("maxLength")? as usize))),
        "integer" => {
            let lo = o.get("minimum")?.as_i64()?;
            let hi = o.get("maximum")?.as_i64()?;
            Some(
                if lo.to_string().len() > hi.to_string().len() {
                    lo
                } else {
                    hi
                }
                .to_string(),
            )
        }
        "number" => {
            let lo = o.get("minimum")?.as_f64()?;
            let hi = o.get("maximum")?.as_f64()?;
            let decimals = decimals_of(o.get("multipleOf")?.as_f64()?)? as usize;
            // One step toward zero from the longer bound, with every decimal.
            let x = if digits(lo) > digits(hi) { lo } else { hi };
            let inner = x.trunc() - x.signum();
            if decimals == 0 || inner < lo || inner > hi {
                return Some(format!("{}", x as i64));
            }
            let sign = if x < 0.0 { "-" } else { "" };
            Some(format!(
                "{sign}{}.{}",
                inner.abs() as i64,
                "9".repeat(decimals)
            ))
        }
        "array" => {
            let n = max("maxItems")? as usize;
            let prefix: Vec<&Value> = o
                .get("prefixItems")
                .and_then(Value::as_array)
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let mut items = Vec::new();
            for i in 0..n {
                items.push(longest(prefix.get(i).copied().or(o.get("items"))?)?);
            }
            Some(format!("[{}]", items.join(", ")))
        }
        "object" => {
            let props = o.get("properties")?.as_object()?;
            let mut parts = Vec::new();
            for (k, v) in props {
                parts.push(format!("{}: {}", json!(k), longest(v)?));
            }
            Some(format!("{{{}}}", parts.join(", ")))
        }
        _ => None,
    }
}

/// A constant as llguidance writes it, with the fixed separators.
fn spaced(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(spaced).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{}: {}", json!(k), spaced(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        scalar => scalar.to_string(),
    }
}

/// Fits `schema` to `budget`, then holds it to its promises: the worst case
/// fits, the longest value is accepted by llguidance and is no longer than
/// the worst case.
fn assert_fits_and_holds(schema: &Value, budget: u64) -> Result<(), TestCaseError> {
    let f = match fit(&warden_llm::close_schema(schema.clone()), budget) {
        Ok(f) => f,
        Err(FitError::TooLarge { needed, .. }) => {
            prop_assert!(needed > budget);
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("{e} for {schema}"))),
    };
    prop_assert!(f.worst_case <= budget, "{} > {budget}", f.worst_case);
    prop_assert_eq!(worst_case_bytes(&f.schema).ok(), Some(f.worst_case));
    if let Some(text) = longest(&f.schema) {
        prop_assert!(
            text.len() as u64 <= f.worst_case,
            "{} bytes > worst case {}: {text}",
            text.len(),
            f.worst_case
        );
        let accepted = llguidance_accepts(&f.schema, &text).map_err(TestCaseError::fail)?;
        prop_assert!(accepted, "llguidance refused {text} for {}", f.schema);
    }
    Ok(())
}

// ---------- data-driven cases ----------

#[test]
fn integers_get_the_range_of_their_format_or_the_safe_range() {
    let cases = [
        (
            json!({"type": "integer", "format": "uint8", "minimum": 0}),
            0,
            255,
        ),
        (json!({"type": "integer", "format": "int16"}), -32768, 32767),
        (
            json!({"type": "integer", "format": "uint32", "minimum": 0}),
            0,
            4_294_967_295,
        ),
        (
            json!({"type": "integer", "format": "int32"}),
            -2_147_483_648,
            2_147_483_647,
        ),
        (
            json!({"type": "integer", "format": "uint64", "minimum": 0}),
            0,
            SAFE_INTEGER,
        ),
        (
            json!({"type": "integer", "format": "int64"}),
            -SAFE_INTEGER,
            SAFE_INTEGER,
        ),
        (json!({"type": "integer"}), -SAFE_INTEGER, SAFE_INTEGER),
        (
            json!({"type": "integer", "minimum": 1, "maximum": 12}),
            1,
            12,
        ),
        (
            json!({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}),
            1,
            9,
        ),
        (
            json!({"type": "integer", "maximum": 18_446_744_073_709_551_615u64}),
            -SAFE_INTEGER,
            SAFE_INTEGER,
        ),
    ];
    for (schema, lo, hi) in cases {
        let s = fitted(schema.clone(), 1000);
        assert_eq!(
            (s["minimum"].as_i64(), s["maximum"].as_i64()),
            (Some(lo), Some(hi)),
            "{schema}"
        );
        assert_eq!(
            worst_case_bytes(&s).unwrap(),
            lo.to_string().len().max(hi.to_string().len()) as u64
        );
    }
}

#[test]
fn numbers_get_a_range_and_bounded_decimals() {
    let s = fitted(json!({"type": "number", "format": "double"}), 1000);
    assert_eq!(s["multipleOf"].as_f64(), Some(0.000001));
    assert_eq!(s["maximum"], json!(SAFE_INTEGER));
    // sign + 16 digits + "." + 6 decimals
    assert_eq!(worst_case_bytes(&s).unwrap(), 24);
    let s = fitted(
        json!({"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.05}),
        1000,
    );
    assert_eq!(s["multipleOf"].as_f64(), Some(0.05));
    // A step llguidance cannot read exactly (0.07 is not exact in binary)
    // gives way to the default one.
    let s = fitted(json!({"type": "number", "multipleOf": 0.07}), 1000);
    assert_eq!(s["multipleOf"].as_f64(), Some(0.000001));
}

#[test]
fn unions_nullables_enums_and_constants_are_bounded_branch_by_branch() {
    let s = fitted(
        json!({"type": ["integer", "null"], "format": "uint16", "minimum": 0}),
        1000,
    );
    assert_eq!(s["anyOf"][0]["maximum"], json!(65535));
    assert_eq!(s["anyOf"][1]["type"], json!("null"));
    let s = fitted(
        json!({"oneOf": [{"type": "string"}, {"type": "integer", "format": "uint8"}]}),
        1000,
    );
    assert!(s.get("oneOf").is_none() && s["anyOf"].is_array(), "{s}");
    let s = fitted(
        json!({"type": "string", "enum": ["low", "medium", "high"]}),
        1000,
    );
    assert_eq!(worst_case_bytes(&s).unwrap(), 8);
    assert_eq!(worst_case_bytes(&json!({"const": "fixed"})).unwrap(), 7);
}

#[test]
fn anything_goes_becomes_a_bounded_scalar() {
    for schema in [json!(true), json!({}), json!({"description": "any value"})] {
        let s = fitted(schema.clone(), 1000);
        assert!(worst_case_bytes(&s).is_ok(), "{schema} -> {s}");
    }
}

#[test]
fn recursive_types_are_unrolled_then_cut() {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Node {
        name: String,
        children: Vec<Node>,
    }
    let s = fitted(root_schema::<Node>(), 4000);
    let depth = {
        let mut d = 0;
        let mut v = &s;
        while let Some(items) = v.pointer("/properties/children/items") {
            d += 1;
            v = items;
        }
        d
    };
    // The root is the type itself; each `$ref` back to it is one more level.
    assert!(
        (2..=MAX_REF_DEPTH + 1).contains(&depth),
        "depth {depth}: {s}"
    );
    assert!(worst_case_bytes(&s).unwrap() <= 4000);
}

#[test]
fn what_cannot_be_bounded_is_refused_with_where_and_why() {
    let cases = [
        (
            json!({"type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}}),
            "arguments/labels",
            "free-form keys",
        ),
        (
            json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}}),
            "arguments/x",
            "does not resolve",
        ),
    ];
    for (schema, path, why) in cases {
        match fit(&warden_llm::close_schema(schema.clone()), 1000) {
            Err(FitError::Unbounded(u)) => {
                assert_eq!(u.path, path, "{schema}");
                assert!(u.reason.contains(why), "{u}");
            }
            other => panic!("{schema}: {other:?}"),
        }
    }
}

#[test]
fn the_checker_names_what_is_unbounded() {
    let cases = [
        (json!({"type": "string"}), "maxLength"),
        (json!({"type": "integer", "minimum": 0}), "maximum"),
        (
            json!({"type": "number", "minimum": 0, "maximum": 1}),
            "multipleOf",
        ),
        (
            json!({"type": "array", "items": {"type": "boolean"}}),
            "maxItems",
        ),
        (
            json!({"type": "object", "properties": {}}),
            "additionalProperties",
        ),
        (json!(true), "any JSON value"),
        (
            json!({"$defs": {"T": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/T"}}}, "$ref": "#/$defs/T"}),
            "recursive",
        ),
    ];
    for (schema, why) in cases {
        let e = worst_case_bytes(&schema).unwrap_err();
        assert!(e.reason.contains(why), "{schema}: {e}");
    }
}

#[test]
fn llguidance_enforces_each_bound_the_checker_counts() {
    // (schema, longest accepted, one past the bound)
    let cases = [
        (
            json!({"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64}),
            "4294967295",
            "42949672950",
        ),
        (
            json!({"type": "integer", "minimum": -128, "maximum": 127}),
            "-128",
            "-1280",
        ),
        (
            json!({"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.01}),
            "9.99",
            "9.999",
        ),
        (
            json!({"type": "string", "maxLength": 3}),
            "\"é\\\"😀\"",
            "\"abcd\"",
        ),
        (
            json!({"type": "array", "maxItems": 2, "items": {"type": "boolean"}}),
            "[true, false]",
            "[true, true, true]",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "boolean"}}, "additionalProperties": false}),
            "{\"a\": true}",
            "{\"a\":true}",
        ),
        // `\u` escapes are off: a character is never six bytes.
        (
            json!({"type": "string", "maxLength": 1}),
            "\"\\n\"",
            "\"\\u0041\"",
        ),
    ];
    for (schema, ok, too_long) in cases {
        assert_eq!(llguidance_accepts(&schema, ok), Ok(true), "{schema} {ok}");
        assert_eq!(
            llguidance_accepts(&schema, too_long),
            Ok(false),
            "{schema} {too_long}"
        );
        assert!(
            ok.len() as u64 <= worst_case_bytes(&schema).unwrap(),
            "{schema}"
        );
    }
}

// ---------- real schemars output ----------

mod shapes {
    #![allow(dead_code)]
    use schemars::JsonSchema;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    pub(super) struct LineItem {
        pub sku: String,
        pub quantity: u32,
        pub unit_price_cents: u64,
        pub warehouse: Option<u16>,
    }

    #[derive(Deserialize, JsonSchema)]
    pub(super) enum Carrier {
        Post,
        Courier { name: String, account: u64 },
        Pickup(u8),
    }

    #[derive(Deserialize, JsonSchema)]
    pub(super) struct Order {
        pub customer_id: u64,
        pub items: Vec<LineItem>,
        pub carrier: Carrier,
        pub discount: Option<f32>,
        pub notes: Option<String>,
        pub priority: i8,
        pub gift: bool,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub(super) enum Event {
        Move { x: i32, y: i32 },
        Resize { width: u16, height: u16, ratio: f64 },
        Note { text: String },
    }

    #[derive(Deserialize, JsonSchema)]
    pub(super) struct Every {
        pub a: u8,
        pub b: u16,
        pub c: u32,
        pub d: u64,
        pub e: u128,
        pub f: usize,
        pub g: i8,
        pub h: i16,
        pub i: i32,
        pub j: i64,
        pub k: i128,
        pub l: isize,
        pub m: f32,
        pub n: f64,
        pub o: Vec<Event>,
        pub p: Option<Vec<Option<u32>>>,
        pub q: (u8, String),
        pub r: [i16; 3],
    }
}

#[test]
fn real_derive_output_fits_every_budget_it_can() {
    let cases = [
        ("Order", root_schema::<shapes::Order>()),
        ("Event", root_schema::<shapes::Event>()),
        ("Every", root_schema::<shapes::Every>()),
        ("Vec<LineItem>", root_schema::<Vec<shapes::LineItem>>()),
    ];
    for (name, schema) in cases {
        for budget in [200, 500, 1000, 4000] {
            assert_fits_and_holds(&schema, budget)
                .unwrap_or_else(|e| panic!("{name} at {budget}: {e}"));
        }
    }
}

#[test]
fn an_order_tool_fits_a_default_step_with_room_for_items() {
    let offer = Offer {
        name: "place_order".into(),
        description: String::new(),
        schema: root_schema::<shapes::Order>(),
    };
    let step = step_schema(&[offer], true, 1024).unwrap();
    assert!(worst_case_bytes(&step).unwrap() <= 1023);
    let items = step
        .pointer("/anyOf/0/properties/arguments/properties/items")
        .unwrap();
    assert!(items["maxItems"].as_u64().unwrap() >= 2, "{items}");
    assert_eq!(
        items.pointer("/items/properties/quantity/maximum"),
        Some(&json!(4_294_967_295u64))
    );
    // The whole step compiles, and the longest call parses.
    assert_eq!(llguidance_accepts(&step, "{\"final\": \"ok\"}"), Ok(true));
}

// ---------- generated schemas ----------

/// Schemas as schemars writes them for Rust types: leaves (strings,
/// integers of every width, floats, booleans, unit enums), `Option`,
/// `Vec`, tuples, structs, and data-carrying enums.
fn schemars_shaped() -> impl Strategy<Value = Value> {
    let int = prop_oneof![
        Just(json!({"type": "integer", "format": "uint8", "minimum": 0})),
        Just(json!({"type": "integer", "format": "uint16", "minimum": 0})),
        Just(json!({"type": "integer", "format": "uint32", "minimum": 0})),
        Just(json!({"type": "integer", "format": "uint64", "minimum": 0})),
        Just(json!({"type": "integer", "format": "uint", "minimum": 0})),
        Just(json!({"type": "integer", "format": "int8"})),
        Just(json!({"type": "integer", "format": "int32"})),
        Just(json!({"type": "integer", "format": "int64"})),
        Just(json!({"type": "integer", "format": "int"})),
        (0i64..1000, 0i64..1_000_000)
            .prop_map(|(a, b)| json!({"type": "integer", "minimum": a, "maximum": a + b})),
    ];
    let leaf = prop_oneof![
        int,
        Just(json!({"type": "string"})),
        (1u64..400).prop_map(|n| json!({"type": "string", "maxLength": n})),
        (1u64..20).prop_map(|n| json!({"type": "string", "minLength": n, "maxLength": n + 30})),
        Just(json!({"type": "number", "format": "float"})),
        Just(json!({"type": "number", "format": "double"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "string", "enum": ["Low", "Medium", "High"]})),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            // Option<T> (both spellings schemars uses)
            inner.clone().prop_map(|t| match t.get("type").and_then(Value::as_str) {
                Some(ty) => {
                    let mut t = t.clone();
                    t["type"] = json!([ty, "null"]);
                    t
                }
                None => json!({"anyOf": [t, {"type": "null"}]}),
            }),
            // Vec<T>, with and without a declared bound
            (inner.clone(), proptest::option::of(0u64..40))
                .prop_map(|(t, max)| match max {
                    Some(m) => json!({"type": "array", "items": t, "maxItems": m}),
                    None => json!({"type": "array", "items": t}),
                }),
            // (A, B)
            (inner.clone(), inner.clone()).prop_map(|(a, b)| {
                json!({"type": "array", "prefixItems": [a, b], "minItems": 2, "maxItems": 2})
            }),
            // struct { .. } with some fields optional
            proptest::collection::vec((inner.clone(), any::<bool>()), 1..5).prop_map(|fields| {
                let mut props = Map::new();
                let mut required = Vec::new();
                for (i, (schema, req)) in fields.into_iter().enumerate() {
                    let name = format!("field_{i}");
                    if req {
                        required.push(json!(name));
                    }
                    props.insert(name, schema);
                }
                json!({"type": "object", "properties": props, "required": required})
            }),
            // enum E { A(T), B { x: T } }, externally tagged
            (inner.clone(), inner).prop_map(|(a, b)| {
                json!({"oneOf": [
                    {"type": "object", "properties": {"A": a}, "required": ["A"], "additionalProperties": false},
                    {"type": "object", "properties": {"B": {"type": "object", "properties": {"x": b}, "required": ["x"]}}, "required": ["B"], "additionalProperties": false},
                ]})
            }),
        ]
    })
}

/// Moves every struct behind a `$ref`, as schemars does for named types.
fn behind_refs(schema: Value) -> Value {
    fn walk(v: &mut Value, defs: &mut Map<String, Value>) {
        match v {
            Value::Object(o) => {
                o.values_mut().for_each(|c| walk(c, defs));
                if o.get("type") == Some(&json!("object")) {
                    let name = format!("Struct{}", defs.len());
                    defs.insert(name.clone(), Value::Object(std::mem::take(o)));
                    o.insert("$ref".into(), json!(format!("#/$defs/{name}")));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| walk(c, defs)),
            _ => {}
        }
    }
    let mut defs = Map::new();
    let mut args =
        json!({"type": "object", "properties": {"input": schema}, "required": ["input"]});
    if let Some(input) = args.pointer_mut("/properties/input") {
        walk(input, &mut defs);
    }
    args["$defs"] = Value::Object(defs);
    args
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_generated_tool_schema_fits_or_is_refused_and_llguidance_agrees(
        schema in schemars_shaped().prop_map(behind_refs),
        budget in 64u64..3000,
    ) {
        assert_fits_and_holds(&schema, budget)?;
    }

    #[test]
    fn a_whole_step_never_exceeds_its_tokens(
        schemas in proptest::collection::vec(schemars_shaped().prop_map(behind_refs), 1..4),
        max_tokens in 128u32..2048,
    ) {
        let offers: Vec<Offer> = schemas
            .into_iter()
            .enumerate()
            .map(|(i, schema)| Offer { name: format!("tool_{i}"), description: String::new(), schema })
            .collect();
        match step_schema(&offers, true, max_tokens) {
            Ok(step) => {
                let worst = worst_case_bytes(&step).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(worst < u64::from(max_tokens), "{worst} >= {max_tokens}");
                prop_assert_eq!(llguidance_accepts(&step, "{\"final\": \"done\"}"), Ok(true));
            }
            Err(e) => prop_assert!(matches!(e.source, FitError::TooLarge { .. }), "{e}"),
        }
    }
}
