//! Items, their locks and sub-form rows, form tokens, and listing.

use serde_json::{Value, json};

use super::filter::{matches_filter, parse_filter_key};
use super::{AccessRec, LockRec, Reply, State, api_error, not_found, ok};

impl State {
    /// Number of items stored in a collection.
    pub fn item_count(&self, app_id: u64, collection_id: u64) -> usize {
        self.items.get(&(app_id, collection_id)).map_or(0, Vec::len)
    }

    /// The items of a collection, in the order listings give them.
    pub fn items(&self, app_id: u64, collection_id: u64) -> &[Value] {
        self.items
            .get(&(app_id, collection_id))
            .map_or(&[], Vec::as_slice)
    }

    /// The ids of a collection's items, in the order listings give them.
    pub fn item_ids(&self, app_id: u64, collection_id: u64) -> Vec<u64> {
        self.items(app_id, collection_id)
            .iter()
            .filter_map(|item| item["id"].as_u64())
            .collect()
    }

    /// Adds `count` items `{"n": i, "title": "item i"}` to a collection.
    pub fn seed_items(&mut self, app: u64, coll: u64, count: u64) {
        for n in 0..count {
            self.insert_item(app, coll, json!({"n": n, "title": format!("item {n}")}), 0);
        }
    }

    /// Whether `who` may see item `id` (see [`MockConfig::per_user_items`]).
    pub(super) fn visible(&self, who: &AccessRec, id: u64) -> bool {
        if !self.config.per_user_items {
            return true;
        }
        match who.user_id.filter(|u| self.users.contains_key(u)) {
            None => true,
            Some(user) => self.owners.get(&id) == Some(&user),
        }
    }

    pub(super) fn insert_item(&mut self, app: u64, coll: u64, data: Value, now: u64) -> Value {
        let id = self.next_item_id;
        self.next_item_id += 1;
        let title = data.get("title").cloned().unwrap_or(Value::Null);
        let item =
            json!({"id": id, "title": title, "fields": data, "created_at": now, "updated_at": now});
        self.items
            .entry((app, coll))
            .or_default()
            .push(item.clone());
        self.index.replace((app, coll), None, Some(&item));
        item
    }

    pub(super) fn create_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        body: Option<Value>,
        now: u64,
    ) -> Reply {
        let Some(data) = data_of(body) else {
            return not_data();
        };
        self.counters.items_created += 1;
        let item = self.insert_item(app, coll, data, now);
        if let (Some(id), Some(user)) = (item["id"].as_u64(), who.user_id) {
            self.owners.insert(id, user);
        }
        self.changed(app, coll, &item, "created", Some(who), now);
        (200, ok(item))
    }

    pub(super) fn find_item(&self, app: u64, coll: u64, id: u64) -> Option<usize> {
        position(self.items.get(&(app, coll))?, id)
    }

    /// The item `key`'s collection and its place there, if `who` may change
    /// it now: 404 when it is not there, 409 while someone else holds a live
    /// lock.
    fn changeable(
        &mut self,
        who: &AccessRec,
        key: (u64, u64, u64),
        now: u64,
    ) -> Result<(&mut Vec<Value>, usize), Reply> {
        let (app, coll, id) = key;
        let items = self.items.get_mut(&(app, coll));
        let Some((items, pos)) = items
            .and_then(|items| Some((position(items, id)?, items)))
            .map(|(pos, items)| (items, pos))
        else {
            return Err(not_found("item"));
        };
        match self.locks.get(&key) {
            Some(lock) if lock.expires_at > now && lock.holder != holder(who) => Err(api_error(
                409,
                "ITEM_LOCKED",
                &format!(
                    "item is locked ({})",
                    lock.subject.as_deref().unwrap_or("no subject")
                ),
            )),
            _ => Ok((items, pos)),
        }
    }

    pub(super) fn get_item(
        &self,
        app: u64,
        coll: u64,
        id: u64,
        query: &[(String, String)],
    ) -> Reply {
        let Some(pos) = self.find_item(app, coll, id) else {
            return not_found("item");
        };
        let item = &self.items[&(app, coll)][pos];
        let wanted: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "fields")
            .map(|(_, v)| v.as_str())
            .collect();
        if wanted.is_empty() {
            return (200, ok(item.clone()));
        }
        let mut fields = serde_json::Map::new();
        let mut out = json!({"id": id});
        for name in wanted {
            if let Some(v) = item["fields"].get(name) {
                fields.insert(name.to_owned(), v.clone());
            } else if let Some(v) = item.get(name) {
                out[name] = v.clone();
            }
        }
        out["fields"] = Value::Object(fields);
        (200, ok(out))
    }

    pub(super) fn update_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        body: Option<Value>,
        now: u64,
    ) -> Result<Reply, Reply> {
        let Some(Value::Object(data)) = data_of(body) else {
            return Err(not_data());
        };
        let (items, pos) = self.changeable(who, (app, coll, id), now)?;
        let item = &mut items[pos];
        let before = item.clone();
        for (k, v) in data {
            if k == "title" {
                item["title"] = v.clone();
            }
            item["fields"][k.as_str()] = v;
        }
        item["updated_at"] = json!(now);
        let item = item.clone();
        self.index.replace((app, coll), Some(&before), Some(&item));
        self.changed(app, coll, &item, "updated", Some(who), now);
        Ok((200, ok(item)))
    }

    pub(super) fn delete_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        now: u64,
    ) -> Result<Reply, Reply> {
        let (items, pos) = self.changeable(who, (app, coll, id), now)?;
        let removed = items.remove(pos);
        self.index.replace((app, coll), Some(&removed), None);
        self.locks.remove(&(app, coll, id));
        self.changed(app, coll, &removed, "deleted", Some(who), now);
        Ok((200, ok(json!({"id": removed["id"], "deleted": true}))))
    }

    pub(super) fn lock_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        body: Option<Value>,
        now: u64,
    ) -> Reply {
        let body = body.unwrap_or(Value::Null);
        let timeout = body["lockTimeout"].as_u64().unwrap_or(600);
        let Some(lock_id) = body["lockId"].as_str().map(str::to_owned) else {
            return api_error(400, "BAD_REQUEST", "lockId is required");
        };
        if self.find_item(app, coll, id).is_none() {
            return not_found("item");
        }
        let key = (app, coll, id);
        if let Some(lock) = self.locks.get(&key)
            && lock.expires_at > now
            && lock.lock_id != lock_id
        {
            return api_error(409, "ITEM_LOCKED", "item is locked by another lock");
        }
        let lock = LockRec {
            lock_id,
            subject: body["lockSubject"].as_str().map(str::to_owned),
            holder: holder(who),
            expires_at: now.saturating_add(timeout),
        };
        let answer = lock_json(id, Some(&lock));
        self.locks.insert(key, lock);
        (200, ok(answer))
    }

    pub(super) fn unlock_item(
        &mut self,
        app: u64,
        coll: u64,
        id: u64,
        body: Option<Value>,
        now: u64,
    ) -> Reply {
        let Some(lock_id) = body.as_ref().and_then(|b| b["lockId"].as_str()) else {
            return api_error(400, "BAD_REQUEST", "lockId is required");
        };
        if self.find_item(app, coll, id).is_none() {
            return not_found("item");
        }
        let key = (app, coll, id);
        match self.locks.get(&key) {
            Some(lock) if lock.expires_at > now && lock.lock_id != lock_id => {
                api_error(409, "ITEM_LOCKED", "item is locked by another lock")
            }
            _ => {
                self.locks.remove(&key);
                (200, ok(lock_json(id, None)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_sub_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        field: u64,
        body: Option<Value>,
        now: u64,
    ) -> Result<Reply, Reply> {
        let Some(Value::Object(mut row)) = data_of(body) else {
            return Err(not_data());
        };
        let row_id = self.next_row_id;
        let (items, pos) = self.changeable(who, (app, coll, id), now)?;
        let item = &mut items[pos];
        let before = item.clone();
        row.insert("id".into(), json!(row_id));
        let rows = &mut item["fields"][field.to_string()];
        if !rows.is_array() {
            *rows = json!([]);
        }
        if let Value::Array(rows) = rows {
            rows.push(Value::Object(row.clone()));
        }
        let after = item.clone();
        self.index.replace((app, coll), Some(&before), Some(&after));
        self.next_row_id += 1;
        Ok((200, ok(Value::Object(row))))
    }

    /// Updates (`data: Some`) or deletes (`data: None`) a sub-form row.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn change_sub_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        field: u64,
        row_id: u64,
        data: Option<Option<Value>>,
        now: u64,
    ) -> Result<Reply, Reply> {
        let update = match data {
            Some(body) => match data_of(body) {
                Some(Value::Object(map)) => Some(map),
                _ => {
                    return Err(not_data());
                }
            },
            None => None,
        };
        let (items, pos) = self.changeable(who, (app, coll, id), now)?;
        let item = &mut items[pos];
        let before = item.clone();
        let Some(rows) = item["fields"][field.to_string()].as_array_mut() else {
            return Err(not_found("sub-form row"));
        };
        let Some(at) = rows.iter().position(|r| r["id"].as_u64() == Some(row_id)) else {
            return Err(not_found("sub-form row"));
        };
        let answer = match update {
            Some(map) => {
                for (k, v) in map {
                    rows[at][k.as_str()] = v;
                }
                rows[at]["id"] = json!(row_id);
                rows[at].clone()
            }
            None => {
                rows.remove(at);
                json!({"id": row_id, "deleted": true})
            }
        };
        let after = item.clone();
        self.index.replace((app, coll), Some(&before), Some(&after));
        Ok((200, ok(answer)))
    }

    pub(super) fn issue_form_token(
        &mut self,
        kind: &str,
        scope: Value,
        options: Option<Value>,
        now: u64,
    ) -> Reply {
        let options = options.unwrap_or_else(|| json!({}));
        if !options.is_object() {
            return api_error(400, "BAD_REQUEST", "options must be a JSON object");
        }
        let expire = options["expire"].as_u64().unwrap_or(3600);
        let token = self.secrets.next(kind);
        let mut answer =
            json!({"token": token, "kind": kind, "expires_at": now.saturating_add(expire)});
        if let (Value::Object(a), Value::Object(s)) = (&mut answer, scope) {
            a.extend(s);
        }
        if kind == "upload" {
            answer["upload_url"] = json!("https://uploads.example/put");
        }
        self.issued_tokens.push(answer.clone());
        (200, ok(answer))
    }

    /// Submission, update and upload tokens issued.
    pub fn issued_tokens(&self) -> &[Value] {
        &self.issued_tokens
    }

    pub(super) fn list_items(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        query: &[(String, String)],
    ) -> Reply {
        let mut start = 0usize;
        let mut limit = 20usize;
        let mut filters: Vec<(String, String, Vec<String>)> = Vec::new();
        for (k, v) in query {
            match k.as_str() {
                "pagination[start]" => match v.parse() {
                    Ok(n) => start = n,
                    Err(_) => {
                        return api_error(400, "BAD_REQUEST", "pagination[start] must be a number");
                    }
                },
                "pagination[limit]" => match v.parse() {
                    Ok(n) if n <= 1000 => limit = n,
                    _ => {
                        return api_error(400, "BAD_REQUEST", "pagination[limit] must be 0..=1000");
                    }
                },
                _ => {
                    if let Some((field, op)) = parse_filter_key(k) {
                        match filters.iter_mut().find(|(f, o, _)| *f == field && *o == op) {
                            Some((_, _, values)) => values.push(v.clone()),
                            None => filters.push((field, op, vec![v.clone()])),
                        }
                    } else {
                        return api_error(400, "BAD_REQUEST", "unknown query parameter");
                    }
                }
            }
        }
        let all = self
            .items
            .get(&(app, coll))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // A `$eq` filter narrows the items to check to the index's few.
        let candidates: Option<Vec<usize>> = filters
            .iter()
            .find(|(_, op, values)| op == "$eq" && values.len() == 1)
            .map(|(field, _, values)| {
                self.index
                    .lookup((app, coll), all, field, &values[0])
                    .into_iter()
                    .filter_map(|id| position(all, id))
                    .collect()
            });
        if candidates.is_none() && filters.is_empty() && !self.config.per_user_items {
            // Everything matches: the page is a slice (a collection of 100,000
            // items costs what one of 100 does).
            let page = all.iter().skip(start).take(limit).cloned().collect();
            return listing(page, all.len(), start, limit);
        }
        // One pass: count every match, keep the page's.
        let mut total = 0usize;
        let mut page = Vec::new();
        let mut consider = |item: &Value| {
            let matches = item["id"].as_u64().is_some_and(|id| self.visible(who, id))
                && filters
                    .iter()
                    .all(|(f, op, v)| matches_filter(item, f, op, v));
            if matches {
                if total >= start && page.len() < limit {
                    page.push(item.clone());
                }
                total += 1;
            }
        };
        match candidates {
            Some(candidates) => candidates.into_iter().for_each(|at| consider(&all[at])),
            None => all.iter().for_each(consider),
        }
        listing(page, total, start, limit)
    }
}

fn listing(page: Vec<Value>, total: usize, start: usize, limit: usize) -> Reply {
    let mut body = ok(Value::Array(page));
    body["meta"] = json!({"total": total, "start": start, "limit": limit});
    (200, body)
}

/// The place of item `id` in a collection. Items are kept in the order they
/// were created, and ids only grow: a binary search.
fn position(items: &[Value], id: u64) -> Option<usize> {
    items
        .binary_search_by_key(&Some(id), |item| item["id"].as_u64())
        .ok()
}

fn holder(who: &AccessRec) -> String {
    format!("{}:{:?}", who.client_id, who.user_id)
}

fn lock_json(item_id: u64, lock: Option<&LockRec>) -> Value {
    match lock {
        Some(l) => json!({"item_id": item_id, "locked": true, "lock_id": l.lock_id,
            "lock_subject": l.subject, "expires_at": l.expires_at}),
        None => json!({"item_id": item_id, "locked": false}),
    }
}

/// The object under `data` of a `{"data": {…}}` body.
fn data_of(body: Option<Value>) -> Option<Value> {
    match body? {
        Value::Object(mut map) => map.remove("data").filter(Value::is_object),
        _ => None,
    }
}

/// The answer to a body that is not `{"data": {…}}`.
fn not_data() -> Reply {
    api_error(400, "BAD_REQUEST", "body must be {\"data\": {…}}")
}
