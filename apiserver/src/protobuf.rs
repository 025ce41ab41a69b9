//! Decoding of the Kubernetes protobuf envelope for the built-in kinds kubectl creates with typed clients
//! (`kubectl create namespace|configmap|secret` send `application/vnd.kubernetes.protobuf`). Only the fields
//! those objects carry are decoded; other kinds answer 415 as before. Answers are always JSON.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::status::{ApiError, ApiResult};

const MAGIC: &[u8] = b"k8s\0";

/// One protobuf field: number and payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

fn bad() -> ApiError {
    ApiError::bad_request("the protobuf body of the request could not be decoded")
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or_else(bad)?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad())
    }

    fn next(&mut self) -> ApiResult<Option<(u64, Field<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad())?;
                if len > self.buf.len() {
                    return Err(bad());
                }
                let (data, rest) = self.buf.split_at(len);
                self.buf = rest;
                Field::Bytes(data)
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if n > self.buf.len() {
                    return Err(bad());
                }
                self.buf = &self.buf[n..];
                Field::Fixed
            }
            _ => return Err(bad()),
        };
        Ok(Some((key >> 3, field)))
    }
}

fn fields(buf: &[u8]) -> ApiResult<Vec<(u64, Field<'_>)>> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn string(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad())
}

/// A map entry message: key = 1, value = 2.
fn entry(b: &[u8], bytes_value: bool) -> ApiResult<(String, Value)> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = string(x)?,
            (2, Field::Bytes(x)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Field::Bytes(x)) => v = Value::String(string(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_entry(
    m: &mut Map<String, Value>,
    key: &str,
    b: &[u8],
    bytes_value: bool,
) -> ApiResult<()> {
    let (k, v) = entry(b, bytes_value)?;
    let map = m.entry(key).or_insert_with(|| json!({}));
    if let Some(map) = map.as_object_mut() {
        map.insert(k, v);
    }
    Ok(())
}

fn push(m: &mut Map<String, Value>, key: &str, v: Value) {
    if let Some(list) = m.entry(key).or_insert_with(|| json!([])).as_array_mut() {
        list.push(v);
    }
}

/// Field numbers of the plain string fields, with their JSON names.
const OWNER_REFERENCE_STRINGS: &[(u64, &str)] =
    &[(1, "kind"), (3, "name"), (4, "uid"), (5, "apiVersion")];
const OBJECT_META_STRINGS: &[(u64, &str)] = &[
    (1, "name"),
    (2, "generateName"),
    (3, "namespace"),
    (6, "resourceVersion"),
];

/// Stores string field `n` under its JSON name in `names`; a field not named there is skipped.
fn insert_string(
    m: &mut Map<String, Value>,
    names: &[(u64, &str)],
    n: u64,
    x: &[u8],
) -> ApiResult<()> {
    if let Some((_, key)) = names.iter().find(|(number, _)| *number == n) {
        m.insert((*key).into(), json!(string(x)?));
    }
    Ok(())
}

fn owner_reference(b: &[u8]) -> ApiResult<Value> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (n, Field::Bytes(x)) => insert_string(&mut m, OWNER_REFERENCE_STRINGS, n, x)?,
            (6, Field::Varint(v)) => drop(m.insert("controller".into(), json!(v != 0))),
            (7, Field::Varint(v)) => drop(m.insert("blockOwnerDeletion".into(), json!(v != 0))),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn object_meta(b: &[u8]) -> ApiResult<Value> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (11, Field::Bytes(x)) => insert_entry(&mut m, "labels", x, false)?,
            (12, Field::Bytes(x)) => insert_entry(&mut m, "annotations", x, false)?,
            (13, Field::Bytes(x)) => push(&mut m, "ownerReferences", owner_reference(x)?),
            (14, Field::Bytes(x)) => push(&mut m, "finalizers", json!(string(x)?)),
            (n, Field::Bytes(x)) => insert_string(&mut m, OBJECT_META_STRINGS, n, x)?,
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// Decodes `k8s\0` + runtime.Unknown{typeMeta, raw} into JSON for ConfigMap, Secret and Namespace.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(bad)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(envelope)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = string(x)?,
                        (2, Field::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let supported = matches!(
        (api_version.as_str(), kind.as_str()),
        ("v1", "ConfigMap" | "Secret" | "Namespace")
    );
    if !supported {
        return Err(ApiError::unsupported_media_type(
            "application/vnd.kubernetes.protobuf",
            &["application/json", "application/yaml"],
        ));
    }
    for (n, f) in fields(raw)? {
        match (kind.as_str(), n, f) {
            (_, 1, Field::Bytes(x)) => drop(obj.insert("metadata".into(), object_meta(x)?)),
            ("ConfigMap", 2, Field::Bytes(x)) => insert_entry(&mut obj, "data", x, false)?,
            ("ConfigMap", 3, Field::Bytes(x)) => insert_entry(&mut obj, "binaryData", x, true)?,
            ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => {
                drop(obj.insert("immutable".into(), json!(v != 0)))
            }
            ("Secret", 2, Field::Bytes(x)) => insert_entry(&mut obj, "data", x, true)?,
            ("Secret", 3, Field::Bytes(x)) => drop(obj.insert("type".into(), json!(string(x)?))),
            ("Secret", 4, Field::Bytes(x)) => insert_entry(&mut obj, "stringData", x, false)?,
            ("Namespace", 2, Field::Bytes(spec)) => {
                let mut s = Map::new();
                for (sn, sf) in fields(spec)? {
                    if let (1, Field::Bytes(x)) = (sn, sf) {
                        push(&mut s, "finalizers", json!(string(x)?));
                    }
                }
                obj.insert("spec".into(), Value::Object(s));
            }
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [
            ld(1, b"cm1"),
            ld(11, &[ld(1, b"app"), ld(2, b"web")].concat()),
        ]
        .concat();
        let raw = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), ld(1, &type_meta), ld(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
        assert_eq!(decode(b"k8s\0\x0a\xff").unwrap_err().code, 400);
    }
}
