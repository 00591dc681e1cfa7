//! Fix-ups of the OpenAPI documents utoipa generates, shared by the relay and the agent.

/// utoipa (5.5, `non_strict_integers`) writes Rust's unsigned integers as `"u-int64"`; the
/// OpenAPI format registry's names are `uint8` … `uint64`.
pub fn registry_formats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(format)) = map.get_mut("format") {
                if let Some(bits) = format.strip_prefix("u-int") {
                    *format = format!("uint{bits}");
                }
            }
            map.values_mut().for_each(registry_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(registry_formats),
        _ => {}
    }
}
