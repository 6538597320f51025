//! How request bodies are read: JSON, with two rules that serde's defaults do not apply but the OpenAPI
//! document promises.
//!
//! 1. A struct is read from a JSON object only. serde also fills a struct from a sequence (`[a, b]` sets the
//!    fields in order), which no client means and `type: object` rules out: `[null, null]` was accepted as an
//!    empty profile change.
//! 2. An integer field takes every number without a fractional part: for JSON Schema `42.0` and `4.2e1` are
//!    integers, so a client that writes them (Python's `json.dumps(42.0)` does) must not get a 422.
//!
//! Both rules hold at every depth: [`Strict`] wraps the deserializer, and every map, sequence, option and
//! enum it hands out, so nested request structs (`lines[*]`, `users[*]`) follow them too. Nothing is buffered:
//! the wrappers only redirect serde_json's own streaming calls, so error messages keep their line and column.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use crate::error::ApiError;

/// A JSON request body read by the rules of this module. Configured like actix's `web::Json` (the same
/// `JsonConfig`: size limit and error envelope), which it uses underneath.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Json::<Strict<T>>::from_request(req, payload);
        Box::pin(async move { Ok(Json(body.await?.into_inner().0)) })
    }
}

/// An optional JSON request body: `None` when the request carries no body (only white space, or `null`), otherwise
/// read as [`Json`] reads it. actix's `Option<web::Json<T>>` turns every error into `None`, so a malformed
/// or mistyped body was silently ignored; a body that is sent must be valid.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: Default> OptionalJson<T> {
    /// The body, or `T::default()` when none was sent.
    pub fn unwrap_or_default(self) -> T {
        self.0.unwrap_or_default()
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // The body is limited by the application's `PayloadConfig` (the JSON limit).
        let bytes = web::Bytes::from_request(req, payload);
        let is_json = match req.mime_type() {
            Ok(Some(mime)) => mime.subtype().as_str() == "json" || mime.suffix().is_some_and(|s| s.as_str() == "json"),
            _ => false,
        };
        Box::pin(async move {
            let bytes = bytes.await.map_err(|err| match err.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body too large")
                }
                _ => ApiError::bad_request("malformed_body", format!("cannot read the body: {err}")),
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(None));
            }
            if !is_json {
                return Err(ApiError::from_json(actix_web::error::JsonPayloadError::ContentType));
            }
            // `null` is no body too: the document declares optional bodies nullable.
            from_slice::<Option<T>>(&bytes).map(OptionalJson).map_err(|err| ApiError::from_serde_json(&err))
        })
    }
}

/// Reads `T` from JSON text by the rules of this module.
///
/// # Errors
/// serde_json's error: syntax, or a value of the wrong shape.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice::<Strict<T>>(bytes).map(|strict| strict.0)
}

/// `T`, deserialized by the rules of this module.
#[derive(Debug)]
pub struct Strict<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Strict<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(StrictDeserializer(deserializer)).map(Strict)
    }
}

/// Forwards every call to the inner deserializer, with a struct read as a map, integers read by
/// [`Integral`], and every visitor wrapped so that what it is handed is wrapped again.
struct StrictDeserializer<D>(D);

macro_rules! forward_wrapped {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Wrapped(visitor))
        }
    )*};
}

macro_rules! forward_integral {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Integral(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for StrictDeserializer<D> {
    type Error = D::Error;

    forward_wrapped! {
        deserialize_any deserialize_bool deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    forward_integral! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrapped(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrapped(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrapped(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrapped(visitor))
    }

    /// A struct comes from a JSON object only: serde_json's `deserialize_struct` also takes an array.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrapped(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrapped(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor whose nested deserializers, maps, sequences and enums are wrapped in turn.
struct Wrapped<V>(V);

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrapped<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128) visit_f32(f32) visit_f64(f64)
        visit_char(char) visit_str(&str) visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(StrictDeserializer(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(StrictDeserializer(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(StrictAccess(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(StrictAccess(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(StrictAccess(data))
    }
}

/// A visitor of an integer that also takes a float without a fractional part, as the same integer.
struct Integral<V>(V);

/// 2^63 and 2^64: exact as `f64`, and every integral `f64` below them converts to an integer exactly.
const I64_END: f64 = 9_223_372_036_854_775_808.0;
const U64_END: f64 = 18_446_744_073_709_551_616.0;

impl<'de, V: Visitor<'de>> Visitor<'de> for Integral<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_i64(i64) visit_i128(i128) visit_u64(u64) visit_u128(u128) visit_str(&str)
    }

    #[expect(clippy::cast_possible_truncation, reason = "the value is integral and inside the target range")]
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 {
            if (-I64_END..I64_END).contains(&v) {
                return self.0.visit_i64(v as i64);
            }
            if (0.0..U64_END).contains(&v) {
                return self.0.visit_u64(v as u64);
            }
        }
        self.0.visit_f64(v)
    }
}

/// A map, sequence, enum or variant whose values are read by [`StrictDeserializer`].
struct StrictAccess<A>(A);

/// A seed whose value is read by [`StrictDeserializer`].
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(StrictDeserializer(deserializer))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictAccess<A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictAccess<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictAccess<A> {
    type Error = A::Error;
    type Variant = StrictAccess<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
        self.0.variant_seed(seed).map(|(value, variant)| (value, StrictAccess(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictAccess<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrapped(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrapped(visitor))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::from_slice;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Line {
        quantity: i64,
        note: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Order {
        lines: Vec<Line>,
        count: Option<u32>,
    }

    #[test]
    fn structs_come_from_objects_only_at_every_depth() {
        assert!(serde_json::from_str::<Line>("[1, null]").is_ok(), "serde alone takes a sequence");
        let top = from_slice::<Line>(b"[1, null]").unwrap_err();
        assert!(top.is_data(), "{top}");
        let nested = from_slice::<Order>(br#"{"lines": [[1, null]], "count": 1}"#).unwrap_err();
        assert!(nested.is_data(), "{nested}");
        let order = from_slice::<Order>(br#"{"lines": [{"quantity": 2, "note": "x"}], "count": null}"#).unwrap();
        assert_eq!(order.lines, vec![Line { quantity: 2, note: Some("x".into()) }]);
    }

    #[test]
    fn integral_floats_are_integers() {
        let order = from_slice::<Order>(br#"{"lines": [{"quantity": 42.0, "note": null}], "count": 4.2e1}"#).unwrap();
        assert_eq!((order.lines[0].quantity, order.count), (42, Some(42)));
        assert_eq!(from_slice::<Line>(br#"{"quantity": -3.0, "note": null}"#).unwrap().quantity, -3);
        for bad in ["42.5", "1e19", "-1.0e30", "\"42\""] {
            let json = format!(r#"{{"quantity": {bad}, "note": null}}"#);
            assert!(from_slice::<Line>(json.as_bytes()).unwrap_err().is_data(), "{bad}");
        }
        let negative = br#"{"lines": [], "count": -1.0}"#;
        assert!(from_slice::<Order>(negative).unwrap_err().is_data(), "range checks still apply");
    }

    #[test]
    fn errors_keep_their_position() {
        let err = from_slice::<Line>(b"{\"quantity\": \"many\", \"note\": null}").unwrap_err();
        assert_eq!((err.line(), err.column() > 0), (1, true), "{err}");
    }
}
