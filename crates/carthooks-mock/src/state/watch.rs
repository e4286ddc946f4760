//! Watches: registrations, and the change messages they queue for SQS.

use serde_json::{Value, json};

use super::filter::watch_filters_match;
use super::{AccessRec, ChangeMessage, Reply, SERVICE_USER_ID, State, WatchRec, api_error, ok};

impl State {
    /// Queues a change message for every active watch of the collection whose
    /// filters `item` matches. Each change of an item bumps its revision, sent
    /// as the message's `version`.
    pub(super) fn changed(
        &mut self,
        app: u64,
        coll: u64,
        item: &Value,
        event: &str,
        who: Option<&AccessRec>,
        now: u64,
    ) {
        let Some(id) = item["id"].as_u64() else {
            return;
        };
        let entry = self
            .revisions
            .entry(id)
            .or_insert((0, who.and_then(|w| w.user_id).or(Some(SERVICE_USER_ID))));
        entry.0 += 1;
        let (revision, creator) = *entry;
        let mut names: Vec<&String> = self
            .active_watches
            .iter()
            .filter(|(_, w)| {
                w.app_id == app
                    && w.collection_id == coll
                    && w.expires_at > now
                    && watch_filters_match(w.filters.as_ref(), item)
            })
            .map(|(name, _)| name)
            .collect();
        names.sort();
        let tenant_id = who
            .and_then(|w| w.user_id)
            .and_then(|u| self.users.get(&u))
            .map_or(1, |u| u.tenant_id);
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let watch = &self.active_watches[name];
            let body = json!({
                "version": revision,
                "meta": {
                    "event": format!("item.{event}"),
                    "trigger_name": name,
                    "tenant_id": tenant_id,
                    "trigger_type": "watch_data",
                },
                "payload": {
                    "id": id,
                    "title": item["title"],
                    "fields": item["fields"],
                    "created_at": item["created_at"],
                    "updated_at": item["updated_at"],
                    "creator": creator,
                },
            });
            out.push(ChangeMessage {
                queue_url: watch.queue_url.clone(),
                body: body.to_string(),
                item_id: id,
                revision,
            });
        }
        self.counters.changes_queued += out.len() as u64;
        self.outbox.extend(out);
    }

    /// Takes the change messages queued since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<ChangeMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// Records the fate of change messages handed to the queue.
    pub fn count_deliveries(&mut self, delivered: u64, failed: u64) {
        self.counters.changes_delivered += delivered;
        self.counters.change_delivery_failures += failed;
    }

    pub(super) fn watch_data(&mut self, body: Option<Value>, now: u64) -> Reply {
        let Some(body) = body.filter(Value::is_object) else {
            return api_error(400, "BAD_REQUEST", "body must be JSON");
        };
        let required = ["endpoint_url", "name"].iter().all(|k| body[k].is_string())
            && ["app_id", "collection_id", "age"]
                .iter()
                .all(|k| body[k].is_u64());
        if !required || body["endpoint_type"] != "sqs" {
            return api_error(
                400,
                "BAD_REQUEST",
                "endpoint_url, endpoint_type sqs, name, app_id, collection_id and age are required",
            );
        }
        let name = body["name"].as_str().unwrap_or_default().to_owned();
        let age = body["age"].as_u64().unwrap_or_default();
        // Registering a name again renews that watch (a new age from now).
        self.active_watches.insert(
            name,
            WatchRec {
                queue_url: body["endpoint_url"].as_str().unwrap_or_default().to_owned(),
                app_id: body["app_id"].as_u64().unwrap_or_default(),
                collection_id: body["collection_id"].as_u64().unwrap_or_default(),
                filters: body.get("filters").filter(|f| !f.is_null()).cloned(),
                expires_at: now.saturating_add(age),
            },
        );
        let mut watch = body;
        watch["id"] = json!(self.watches.len() as u64 + 1);
        watch["created_at"] = json!(now);
        watch["expires_at"] = json!(now.saturating_add(age));
        self.watches.push(watch.clone());
        (200, ok(watch))
    }

    /// Watch registrations received, renewals included, oldest first.
    pub fn watches(&self) -> &[Value] {
        &self.watches
    }
}
