//! How integer fields are read from JSON (PROTOCOL.md §2), for every wire and signed type.

/// Reads an integer field: any JSON number with no fractional part in 0 ..= 2^53, so `60.0`
/// and `6e1` read as `60`, as they do under the OpenAPI document's `"type": "integer"` (JSON
/// Schema counts `1.0` as an integer), and larger integers written without a fraction up to
/// `u64::MAX`. A fraction, a negative number or anything else is refused.
pub fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Integer;
    impl serde::de::Visitor<'_> for Integer {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<u64, E> {
            // 2^53: past it a double no longer tells neighbouring integers apart.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if value.fract() == 0.0 && (0.0..=EXACT).contains(&value) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(value as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(value), &self))
            }
        }
    }
    deserializer.deserialize_any(Integer)
}
