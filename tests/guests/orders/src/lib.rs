//! A tool shaped like real third-party ones: its argument is a list of
//! line items whose integer fields have no `maximum` (`u32`, `u64`), exactly
//! as schemars describes Rust structs. Before the planner bounded integers,
//! the embedded model wrote digits into such fields until the step ran out
//! of tokens.

use serde::{Deserialize, Serialize};
use warden_sdk::{Context, Effect, JsonSchema, Plugin, Tool, ToolError};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LineItem {
    /// The product code, e.g. "A-1".
    sku: String,
    /// How many units.
    quantity: u32,
    /// Price of one unit, in cents.
    unit_price_cents: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrderArgs {
    /// The customer's number.
    customer_id: u64,
    /// What is ordered.
    items: Vec<LineItem>,
}

#[derive(Serialize)]
struct Priced {
    customer_id: u64,
    lines: usize,
    units: u64,
    total_cents: u64,
}

fn place_order(_: &Context, a: OrderArgs) -> Result<Priced, ToolError> {
    if a.items.is_empty() {
        return Err(ToolError::invalid("an order needs at least one item"));
    }
    let mut total: u64 = 0;
    let mut units: u64 = 0;
    for item in &a.items {
        let line = u64::from(item.quantity)
            .checked_mul(item.unit_price_cents)
            .ok_or_else(|| ToolError::invalid(format!("line {} overflows", item.sku)))?;
        total = total
            .checked_add(line)
            .ok_or_else(|| ToolError::invalid("the total overflows"))?;
        units += u64::from(item.quantity);
    }
    Ok(Priced {
        customer_id: a.customer_id,
        lines: a.items.len(),
        units,
        total_cents: total,
    })
}

struct Orders;

impl Plugin for Orders {
    const ID: &'static str = "test.orders";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn tools() -> Vec<Tool> {
        vec![Tool::new(
            "place_order",
            "Prices an order: a customer number and line items (sku, quantity, unit price in cents).",
            Effect::Pure,
            place_order,
        )]
    }
}

warden_sdk::export_plugin!(Orders);
