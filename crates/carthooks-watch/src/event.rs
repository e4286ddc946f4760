//! The change message Carthooks sends to a watch's queue, typed.
//!
//! ```json
//! {"version": 3,
//!  "meta": {"event": "item.updated", "trigger_name": "watch-1-2",
//!           "tenant_id": 1, "trigger_type": "watch_data"},
//!  "payload": {"id": 42, "title": "Order 7", "fields": {"f_1001": "EF2509"},
//!              "created_at": 1764400000, "updated_at": 1764400100, "creator": 7}}
//! ```
//!
//! Only `payload.id` is required (the Python SDK refuses a message without it
//! too). Every other field is read leniently — a number sent as a string, a
//! missing `meta` — and anything this SDK does not know is kept in `extra`, so
//! a server that adds fields breaks nothing.

use carthooks_client::ItemId;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One change of one item, as delivered to the queue.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChangeEvent {
    /// The message's `version`, as sent. Its meaning is not documented by
    /// Carthooks; carthooks-mock sends the item's revision (1, 2, …), so that
    /// `(payload.id, version)` names one change.
    pub version: Option<Value>,
    /// What happened and which watch sent it.
    pub meta: EventMeta,
    /// The item as it is after the change.
    pub payload: Payload,
    /// Top-level fields this SDK does not know, kept as sent.
    pub extra: Map<String, Value>,
}

/// `meta`: what happened, and which watch sent it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EventMeta {
    /// The event name (`""` when absent); carthooks-mock sends `item.created`,
    /// `item.updated` and `item.deleted`.
    pub event: String,
    /// The name of the watch (trigger) that sent the message.
    pub trigger_name: String,
    /// The tenant the item belongs to.
    pub tenant_id: Option<u64>,
    /// The kind of trigger.
    pub trigger_type: String,
    /// Fields of `meta` this SDK does not know.
    pub extra: Map<String, Value>,
}

/// `payload`: the item.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Payload {
    /// The item's id (required).
    pub id: ItemId,
    /// The item's title.
    pub title: Option<String>,
    /// The item's fields (`f_1001`, …); empty when absent.
    pub fields: Map<String, Value>,
    /// Creation time (Unix seconds).
    pub created_at: Option<i64>,
    /// Last update time (Unix seconds).
    pub updated_at: Option<i64>,
    /// The user who created the item.
    pub creator: Option<u64>,
    /// Fields of `payload` this SDK does not know.
    pub extra: Map<String, Value>,
}

/// Why a message is not a change event. Such messages are reported and left in
/// the queue (for its redrive policy), never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The body is not JSON.
    #[error("the message body is not JSON")]
    NotJson,
    /// The body is JSON but not an object.
    #[error("the message body is not a JSON object")]
    NotAnObject,
    /// There is no `payload.id`, or it is not an item id.
    #[error("the message has no payload.id")]
    NoItemId,
}

/// The kind of change, from [`EventMeta::event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// An item was created.
    Created,
    /// An item was updated.
    Updated,
    /// An item was deleted.
    Deleted,
    /// An event name this SDK does not know (see [`EventMeta::event`]).
    Other,
}

impl ChangeEvent {
    /// Parses a message body. Never panics, whatever the body.
    pub fn parse(body: &str) -> Result<Self, Malformed> {
        let value: Value = serde_json::from_str(body).map_err(|_| Malformed::NotJson)?;
        let Value::Object(mut top) = value else {
            return Err(Malformed::NotAnObject);
        };
        let Some(Value::Object(mut payload)) = top.remove("payload") else {
            return Err(Malformed::NoItemId);
        };
        let id = payload
            .remove("id")
            .as_ref()
            .and_then(as_u64)
            .ok_or(Malformed::NoItemId)?;
        let mut meta = match top.remove("meta") {
            Some(Value::Object(meta)) => meta,
            _ => Map::new(),
        };
        let version = top.remove("version");
        let text = |map: &mut Map<String, Value>, key: &str| match map.remove(key) {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let meta = EventMeta {
            event: text(&mut meta, "event"),
            trigger_name: text(&mut meta, "trigger_name"),
            tenant_id: meta.remove("tenant_id").as_ref().and_then(as_u64),
            trigger_type: text(&mut meta, "trigger_type"),
            extra: meta,
        };
        let title = match payload.remove("title") {
            Some(Value::String(s)) => Some(s),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let fields = match payload.remove("fields") {
            Some(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        let payload = Payload {
            id: ItemId::from(id),
            title,
            fields,
            created_at: payload.remove("created_at").as_ref().and_then(as_i64),
            updated_at: payload.remove("updated_at").as_ref().and_then(as_i64),
            creator: payload.remove("creator").as_ref().and_then(as_u64),
            extra: payload,
        };
        Ok(Self {
            version,
            meta,
            payload,
            extra: top,
        })
    }

    /// The changed item's id.
    pub fn item_id(&self) -> ItemId {
        self.payload.id
    }

    /// The kind of change, from the event name (`item.created`, `created`,
    /// `ITEM_CREATED`, … all read as [`ChangeKind::Created`]).
    pub fn kind(&self) -> ChangeKind {
        let event = self.meta.event.to_ascii_lowercase();
        if event.ends_with("created") || event.ends_with("create") {
            ChangeKind::Created
        } else if event.ends_with("updated") || event.ends_with("update") {
            ChangeKind::Updated
        } else if event.ends_with("deleted") || event.ends_with("delete") {
            ChangeKind::Deleted
        } else {
            ChangeKind::Other
        }
    }

    /// The version as a number, when it is one (carthooks-mock: the revision).
    pub fn revision(&self) -> Option<u64> {
        self.version.as_ref().and_then(as_u64)
    }

    /// The item's fields as your own type.
    ///
    /// ```
    /// # use carthooks_watch::ChangeEvent;
    /// #[derive(serde::Deserialize)]
    /// struct Order { f_1001: String }
    /// let event = ChangeEvent::parse(r#"{"payload": {"id": 1, "fields": {"f_1001": "EF1"}}}"#)?;
    /// assert_eq!(event.fields_as::<Order>()?.f_1001, "EF1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fields_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&Value::Object(self.payload.fields.clone()))
    }
}

/// A non-negative integer, or a string of one.
fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An integer (a whole float too, as JavaScript servers send), or a string of one.
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_message_is_typed_and_unknown_fields_are_kept() {
        let event = ChangeEvent::parse(
            r#"{"version": 3, "shard": "a",
                "meta": {"event": "item.updated", "trigger_name": "w", "tenant_id": "12",
                         "trigger_type": "watch_data", "region": "eu"},
                "payload": {"id": 42, "title": "T", "fields": {"f_1": 1},
                            "created_at": 1.0e9, "updated_at": 1000000001, "creator": 7,
                            "row_id": 9}}"#,
        )
        .unwrap();
        assert_eq!(event.item_id(), ItemId::from(42));
        assert_eq!(event.revision(), Some(3));
        assert_eq!(event.kind(), ChangeKind::Updated);
        assert_eq!(event.meta.tenant_id, Some(12));
        assert_eq!(event.meta.extra["region"], "eu");
        assert_eq!(event.payload.created_at, Some(1_000_000_000));
        assert_eq!(event.payload.creator, Some(7));
        assert_eq!(event.payload.extra["row_id"], 9);
        assert_eq!(event.extra["shard"], "a");
    }

    #[test]
    fn hostile_bodies_are_malformed_never_a_panic() {
        for (body, want) in [
            ("", Malformed::NotJson),
            ("not json", Malformed::NotJson),
            ("[1,2]", Malformed::NotAnObject),
            ("\"x\"", Malformed::NotAnObject),
            ("{}", Malformed::NoItemId),
            (r#"{"payload": {}}"#, Malformed::NoItemId),
            (r#"{"payload": {"id": -1}}"#, Malformed::NoItemId),
            (r#"{"payload": {"id": "abc"}}"#, Malformed::NoItemId),
            (r#"{"payload": [1]}"#, Malformed::NoItemId),
            (r#"{"payload": {"id": 1.5}}"#, Malformed::NoItemId),
        ] {
            assert_eq!(ChangeEvent::parse(body), Err(want), "{body}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(ChangeEvent::parse(&deep), Err(Malformed::NotJson));
    }

    #[test]
    fn only_the_id_is_required() {
        let event = ChangeEvent::parse(r#"{"payload": {"id": "5", "fields": null}}"#).unwrap();
        assert_eq!(event.item_id(), ItemId::from(5));
        assert_eq!(event.kind(), ChangeKind::Other);
        assert!(event.payload.fields.is_empty());
        assert_eq!(event.version, None);
    }
}
