//! Strict JSON in, canonical JSON out.
//!
//! Manifests and results are signed over their exact bytes, so parsing must be unambiguous:
//! duplicate keys are refused (serde_json would silently keep the last one) and sizes are
//! capped. Canonical form (sorted keys, no whitespace) is written by hand rather than relying on
//! serde_json's map order, which a `preserve_order` feature anywhere in the build would change.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Errors from strict parsing.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("document is {size} bytes, over the {limit} byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not valid JSON: {0}")]
    Syntax(String),
}

/// Parse `bytes` as JSON, refusing duplicate object keys and documents over `limit` bytes.
pub fn parse_strict(bytes: &[u8], limit: usize) -> Result<Value, JsonError> {
    if bytes.len() > limit {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let StrictValue(value) =
        StrictValue::deserialize(&mut de).map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Canonical bytes: object keys sorted by their UTF-8 bytes, no insignificant whitespace,
/// strings escaped as serde_json does, numbers as serde_json prints them.
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(&map[key.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(s.to_string()).to_string().as_bytes());
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let StrictValue(v) = access.next_value()?;
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#, 1024).is_err());
        assert!(parse_strict(br#"{"p":{"x":"1","x":"2"}}"#, 1024).is_err());
        assert!(parse_strict(br#"{"a":1,"b":{"a":2}}"#, 1024).is_ok());
    }

    #[test]
    fn trailing_garbage_and_oversize_are_refused() {
        assert!(parse_strict(br#"{"a":1} x"#, 1024).is_err());
        assert!(matches!(
            parse_strict(&[b' '; 2048], 1024),
            Err(JsonError::TooLarge { .. })
        ));
    }

    #[test]
    fn canonical_sorts_keys_and_drops_whitespace() {
        let v = parse_strict(
            br#"{ "b": [1, 2.5, "x\n"], "a": {"z": null, "y": true} }"#,
            1024,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(canonical(&v)).unwrap(),
            r#"{"a":{"y":true,"z":null},"b":[1,2.5,"x\n"]}"#
        );
    }

    #[test]
    fn canonical_is_stable_under_reparse() {
        let v = parse_strict("{\"é\":\"\\u0001\",\"a\":-0}".as_bytes(), 1024).unwrap();
        let once = canonical(&v);
        let twice = canonical(&parse_strict(&once, 1024).unwrap());
        assert_eq!(once, twice);
    }
}
