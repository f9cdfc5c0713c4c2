//! Tolerant field types: Mango sends numbers as strings and ids as numbers, even within one
//! document (`"seq":"1"` beside `"seq":1`, `"extension":101`, `"result":"1000"`).

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Integer fields (`seq`, `timestamp`, codes, times): a JSON number or a numeric string; `""`
/// and `null` read as absent.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer or a string holding one")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v).map(Some).map_err(E::custom)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(Some(v as i64))
            } else {
                Err(E::custom(format!("{v} is not a whole number")))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| E::custom(format!("{v:?} is not an integer")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(V)
}

/// Id and number-as-text fields (`extension`, `acd_group`, `*_id`, numbers): a string, or a JSON
/// number written back as digits. Leading zeros survive only when sent as a string (`"0511"`),
/// as Mango sends them. `""` and `null` read as absent.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok((!v.is_empty()).then(|| v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok((!v.is_empty()).then_some(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(V)
}

/// Flags: `true`/`false`, `1`/`0`, `"true"`/`"1"`; anything else reads as absent.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::Number(n) => n.as_i64().map(|n| n != 0),
        serde_json::Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(default, deserialize_with = "super::int")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "super::text")]
        s: Option<String>,
        #[serde(default, deserialize_with = "super::flag")]
        f: Option<bool>,
    }

    fn t(json: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_and_strings_both_read() {
        assert_eq!(
            t(r#"{"n":"1000","s":101,"f":1}"#).ok(),
            Some(T {
                n: Some(1000),
                s: Some("101".into()),
                f: Some(true)
            })
        );
        assert_eq!(
            t(r#"{"n":1000,"s":"0511","f":"false"}"#).ok(),
            Some(T {
                n: Some(1000),
                s: Some("0511".into()),
                f: Some(false)
            })
        );
        assert_eq!(
            t(r#"{"n":"","s":"","f":null}"#).ok(),
            Some(T {
                n: None,
                s: None,
                f: None
            })
        );
        assert_eq!(
            t(r#"{"n":null,"s":null}"#).ok(),
            Some(T {
                n: None,
                s: None,
                f: None
            })
        );
        assert_eq!(
            t("{}").ok(),
            Some(T {
                n: None,
                s: None,
                f: None
            })
        );
        assert_eq!(t(r#"{"n":12.0}"#).ok().and_then(|t| t.n), Some(12));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(t(r#"{"n":"12a"}"#).is_err());
        assert!(t(r#"{"n":1.5}"#).is_err());
        assert!(t(r#"{"n":[1]}"#).is_err());
        assert!(t(r#"{"n":18446744073709551615}"#).is_err());
        assert!(t(r#"{"s":{"a":1}}"#).is_err());
    }
}
