//! The filter engine: `filters[FIELD][$OP]` query parameters of a listing, and
//! the filters a watch was registered with.

use serde_json::Value;

/// `filters[FIELD][$OP]` or `filters[FIELD][$OP][INDEX]` → (FIELD, $OP).
pub(super) fn parse_filter_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix("filters[")?;
    let (field, rest) = rest.split_once("][")?;
    let op = rest.strip_suffix(']')?;
    let op = match op.split_once("][") {
        Some((op, index)) if index.parse::<usize>().is_ok() => op,
        Some(_) => return None,
        None => op,
    };
    KNOWN_OPS
        .contains(&op)
        .then(|| (field.to_owned(), op.to_owned()))
}

const KNOWN_OPS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$contains",
    "$in",
    "$nin",
    "$null",
    "$notNull",
];

fn field_value<'a>(item: &'a Value, field: &str) -> Option<&'a Value> {
    item.get("fields")
        .and_then(|f| f.get(field))
        .or_else(|| item.get(field))
}

/// A value as the text a filter compares it with: a string as it is, anything
/// else as its JSON. Written into `buf` (no allocation for numbers and
/// booleans, which is what a scan of 100,000 items meets most).
fn text_of<'a>(v: &'a Value, buf: &'a mut String) -> &'a str {
    match v {
        Value::String(s) => s,
        other => {
            use std::fmt::Write;
            buf.clear();
            let _ = write!(buf, "{other}");
            buf
        }
    }
}

/// The text `$eq` compares for `field` of `item` (`None`: empty or missing).
pub(super) fn field_text(item: &Value, field: &str) -> Option<String> {
    let mut buf = String::new();
    field_value(item, field)
        .filter(|v| !v.is_null())
        .map(|v| text_of(v, &mut buf).to_owned())
}

pub(super) fn matches_filter(item: &Value, field: &str, op: &str, values: &[String]) -> bool {
    let actual = field_value(item, field).filter(|v| !v.is_null());
    let value = values.first().map(String::as_str).unwrap_or("");
    let mut buf = String::new();
    let text = actual.map(|a| text_of(a, &mut buf));
    let cmp = || -> Option<std::cmp::Ordering> {
        match (actual?.as_f64(), value.parse::<f64>().ok()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => Some(text?.cmp(value)),
        }
    };
    let listed = || text.is_some_and(|t| values.iter().any(|v| v == t));
    use std::cmp::Ordering::*;
    match op {
        "$eq" => text == Some(value),
        "$ne" => text != Some(value),
        "$gt" => cmp() == Some(Greater),
        "$gte" => matches!(cmp(), Some(Greater | Equal)),
        "$lt" => cmp() == Some(Less),
        "$lte" => matches!(cmp(), Some(Less | Equal)),
        "$contains" => text.is_some_and(|t| t.contains(value)),
        "$in" => listed(),
        "$nin" => !listed(),
        "$null" => actual.is_none() == (value != "false"),
        "$notNull" => actual.is_some() == (value != "false"),
        _ => false,
    }
}

/// A watch's filters (`{"f_1009": {"$eq": 1}}`, as the Python SDK passes them)
/// against an item; no filters match every item.
pub(super) fn watch_filters_match(filters: Option<&Value>, item: &Value) -> bool {
    let Some(Value::Object(fields)) = filters else {
        return true;
    };
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    fields.iter().all(|(field, condition)| match condition {
        Value::Object(ops) => ops.iter().all(|(op, value)| {
            let values: Vec<String> = match value {
                Value::Array(list) => list.iter().map(as_text).collect(),
                other => vec![as_text(other)],
            };
            matches_filter(item, field, op, &values)
        }),
        // A bare value means equality.
        value => matches_filter(item, field, "$eq", &[as_text(value)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters() {
        let item = json!({"id": 1, "fields": {"n": 5, "s": "abc"}});
        let v = |s: &str| vec![s.to_string()];
        assert!(matches_filter(&item, "n", "$gt", &v("4")));
        assert!(!matches_filter(&item, "n", "$lt", &v("5")));
        assert!(matches_filter(&item, "s", "$contains", &v("b")));
        assert!(matches_filter(&item, "missing", "$ne", &v("x")));
        assert!(matches_filter(&item, "n", "$in", &["4".into(), "5".into()]));
        assert!(!matches_filter(&item, "n", "$nin", &["5".into()]));
        assert!(matches_filter(&item, "missing", "$null", &v("true")));
        assert!(matches_filter(&item, "s", "$notNull", &v("true")));
        assert_eq!(
            parse_filter_key("filters[f_1][$eq]"),
            Some(("f_1".into(), "$eq".into()))
        );
        assert_eq!(
            parse_filter_key("filters[f_1][$in][3]"),
            Some(("f_1".into(), "$in".into()))
        );
        assert_eq!(parse_filter_key("filters[f_1][$bogus]"), None);
    }
}
