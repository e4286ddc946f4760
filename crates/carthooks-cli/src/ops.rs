//! One command per API operation, and `api` for any endpoint. Each builds
//! its request from the arguments, makes one SDK call (or walks the pages),
//! and hands the answer's `data` to the printer.

use std::path::Path;

use carthooks::{Endpoint, FilterOp, ItemsQuery, LockOptions, WatchDataRequest};
use serde_json::{Map, Value};

use crate::args::{
    ApiArgs, Data, ItemsCommand, Query, SubItemsCommand, SubmissionTokenArgs, UsersCommand,
    WatchDataArgs,
};
use crate::ctx::Ctx;
use crate::error::{CliError, usage};

/// `--filter` expressions as an items query.
pub fn items_query(query: &Query) -> Result<ItemsQuery, CliError> {
    let mut q = ItemsQuery::new();
    for expr in &query.filters {
        q = add_filter(q, expr)?;
    }
    Ok(q)
}

fn add_filter(q: ItemsQuery, expr: &str) -> Result<ItemsQuery, CliError> {
    // Longest operators first: `>=` before `>`, `!=` before `=`.
    const OPS: [(&str, FilterOp); 7] = [
        ("!=", FilterOp::Ne),
        (">=", FilterOp::Gte),
        ("<=", FilterOp::Lte),
        ("=", FilterOp::Eq),
        (">", FilterOp::Gt),
        ("<", FilterOp::Lt),
        ("~", FilterOp::Contains),
    ];
    let found = OPS
        .iter()
        .filter_map(|(sym, op)| expr.find(sym).map(|at| (at, *sym, *op)))
        .min_by_key(|(at, sym, _)| (*at, std::cmp::Reverse(sym.len())));
    let Some((at, sym, op)) = found else {
        return usage(format!(
            "--filter {expr:?}: expected FIELD=VALUE (or !=, >, >=, <, <=, ~)"
        ));
    };
    let (field, value) = (expr[..at].trim(), &expr[at + sym.len()..]);
    if field.is_empty() || !field.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return usage(format!("--filter {expr:?}: {field:?} is not a field name"));
    }
    Ok(match (op, value) {
        (FilterOp::Eq, "null") => q.filter_null(field),
        (FilterOp::Eq, "notnull") => q.filter_not_null(field),
        (FilterOp::Eq, v) if v.starts_with("in:") => q.filter_in(field, v[3..].split(',')),
        (FilterOp::Eq, v) if v.starts_with("nin:") => q.filter_not_in(field, v[4..].split(',')),
        (op, v) => q.filter(field, op, v),
    })
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<String, CliError> {
    let result = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

/// The JSON of `--data`, `--input` or `--field`s.
pub fn data(data: &Data) -> Result<Value, CliError> {
    let base = match (&data.data, &data.input) {
        (Some(text), _) => parse_json(text, "--data")?,
        (None, Some(path)) => parse_json(&read_input(path)?, &path.display().to_string())?,
        (None, None) if data.fields.is_empty() => {
            return usage("give the data: --data JSON, --input FILE or --field KEY=VALUE");
        }
        (None, None) => Value::Object(Map::new()),
    };
    with_fields(base, &data.fields)
}

fn parse_json(text: &str, what: &str) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|e| CliError::Usage(format!("{what} is not JSON: {e}")))
}

/// Sets each KEY=VALUE of `fields` in `base` (a.b=V nests; V as JSON when
/// it parses, else the string).
pub fn with_fields(mut base: Value, fields: &[String]) -> Result<Value, CliError> {
    for pair in fields {
        let Some((key, raw)) = pair.split_once('=') else {
            return usage(format!("--field {pair:?}: expected KEY=VALUE"));
        };
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        let mut at = &mut base;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return usage(format!("--field {pair:?}: an empty key"));
            }
            let Value::Object(map) = at else {
                return usage(format!("--field {pair:?}: {part} is not inside an object"));
            };
            if i + 1 == parts.len() {
                map.insert((*part).to_owned(), value.clone());
                break;
            }
            at = map
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(base)
}

pub async fn items(ctx: &Ctx, command: ItemsCommand) -> Result<(), CliError> {
    let mut printer = ctx.printer()?;
    let client = ctx.client().await?;
    let value = match command {
        ItemsCommand::List {
            target,
            query,
            limit,
            start,
            all,
            max_items,
        } => {
            let (app, coll) = ctx.target(&target)?;
            printer.fields = query.fields.clone();
            let q = items_query(&query)?.limit(limit.max(1)).start(start);
            if all && printer.streams() {
                // NDJSON without --jq: each item as it comes, nothing held.
                let mut pages = client.all_items(app, coll, &q);
                let mut n = 0u64;
                while let Some(item) = pages.next_item().await {
                    if !printer.print_line(item?)? {
                        break;
                    }
                    n += 1;
                    if max_items.is_some_and(|max| n >= max) {
                        break;
                    }
                }
                return Ok(());
            } else if all {
                let mut items = Vec::new();
                let mut pages = client.all_items(app, coll, &q);
                while let Some(item) = pages.next_item().await {
                    items.push(item?);
                    if max_items.is_some_and(|n| items.len() as u64 >= n) {
                        break;
                    }
                }
                Value::Array(items)
            } else {
                let page = client.get_items(app, coll, &q).await?;
                if let Some(total) = page.total()
                    && total > start + page.data.len() as u64
                    && !ctx.global.quiet
                    && printer.jq.is_none()
                {
                    eprintln!("{} of {total} items; --all for every page", page.data.len());
                }
                Value::Array(page.data)
            }
        }
        ItemsCommand::Get { item, query } => {
            let (app, coll, id) = ctx.item(&item)?;
            let fields: Vec<&str> = query.fields.iter().map(String::as_str).collect();
            client.get_item(app, coll, id, &fields).await?.data
        }
        ItemsCommand::Create { target, data } => {
            let (app, coll) = ctx.target(&target)?;
            client
                .create_item(app, coll, &self::data(&data)?)
                .await?
                .data
        }
        ItemsCommand::Update { item, data } => {
            let (app, coll, id) = ctx.item(&item)?;
            client
                .update_item(app, coll, id, &self::data(&data)?)
                .await?
                .data
        }
        ItemsCommand::Delete { item } => {
            let (app, coll, id) = ctx.item(&item)?;
            client.delete_item(app, coll, id).await?.data
        }
        ItemsCommand::Lock {
            item,
            lock_id,
            timeout,
            subject,
        } => {
            let (app, coll, id) = ctx.item(&item)?;
            let mut options = LockOptions::new(lock_id).timeout(timeout);
            if let Some(s) = subject {
                options = options.subject(s);
            }
            serde_json::to_value(client.lock_item(app, coll, id, &options).await?.data)
                .map_err(|e| CliError::Other(e.to_string()))?
        }
        ItemsCommand::Unlock { item, lock_id } => {
            let (app, coll, id) = ctx.item(&item)?;
            serde_json::to_value(client.unlock_item(app, coll, id, &lock_id).await?.data)
                .map_err(|e| CliError::Other(e.to_string()))?
        }
    };
    printer.print(value)
}

pub async fn sub_items(ctx: &Ctx, command: SubItemsCommand) -> Result<(), CliError> {
    let printer = ctx.printer()?;
    let client = ctx.client().await?;
    let value = match command {
        SubItemsCommand::Create { item, field, data } => {
            let (app, coll, id) = ctx.item(&item)?;
            client
                .create_sub_item(app, coll, id, field, &self::data(&data)?)
                .await?
                .data
        }
        SubItemsCommand::Update { row, data } => {
            let (app, coll, id) = ctx.item(&row.item)?;
            client
                .update_sub_item(app, coll, id, row.field, row.row, &self::data(&data)?)
                .await?
                .data
        }
        SubItemsCommand::Delete { row } => {
            let (app, coll, id) = ctx.item(&row.item)?;
            client
                .delete_sub_item(app, coll, id, row.field, row.row)
                .await?
                .data
        }
    };
    printer.print(value)
}

pub async fn users(ctx: &Ctx, command: UsersCommand) -> Result<(), CliError> {
    let printer = ctx.printer()?;
    let client = ctx.client().await?;
    let user = match command {
        UsersCommand::Me => client.get_current_user().await?.data,
        UsersCommand::Get { id } => client.get_user(id).await?.data,
    };
    printer.print(serde_json::to_value(user).map_err(|e| CliError::Other(e.to_string()))?)
}

pub async fn submission_token(ctx: &Ctx, args: SubmissionTokenArgs) -> Result<(), CliError> {
    let printer = ctx.printer()?;
    let (app, coll) = ctx.target(&args.target)?;
    let options = parse_json(&args.options, "--options")?;
    let client = ctx.client().await?;
    let answer = match args.item {
        None => client.get_submission_token(app, coll, &options).await?,
        Some(item) => {
            client
                .update_submission_token(app, coll, item, &options)
                .await?
        }
    };
    printer.print(answer.data)
}

pub async fn upload_token(ctx: &Ctx) -> Result<(), CliError> {
    let printer = ctx.printer()?;
    let client = ctx.client().await?;
    printer.print(client.get_upload_token().await?.data)
}

pub async fn watch_data(ctx: &Ctx, args: WatchDataArgs) -> Result<(), CliError> {
    let printer = ctx.printer()?;
    let (app, coll) = ctx.target(&args.target)?;
    let mut request = WatchDataRequest::new(args.queue, args.name, app, coll).age(args.age);
    if let Some(filters) = &args.filters {
        request = request.filters(parse_json(filters, "--filters")?);
    }
    let client = ctx.client().await?;
    printer.print(client.start_watch_data(&request).await?.data)
}

/// `carthooks api METHOD PATH`: any endpoint, through the SDK's `execute`
/// (its tokens, retries of what may be retried, 401 replay, errors).
pub async fn api(ctx: &Ctx, args: ApiArgs) -> Result<(), CliError> {
    let printer = ctx.printer()?;
    let method: carthooks::http::Method = match args.method.to_ascii_uppercase().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => m
            .parse()
            .map_err(|_| CliError::Usage(format!("{:?} is not an HTTP method", args.method)))?,
        _ => {
            return usage(format!(
                "{:?}: use GET, POST, PUT, PATCH or DELETE",
                args.method
            ));
        }
    };
    let (path, query_string) = match args.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (args.path.as_str(), None),
    };
    if !path.starts_with('/') || path.contains(['{', '}']) {
        return usage(format!(
            "{:?}: the path starts with / and names no placeholder",
            args.path
        ));
    }
    let mut query: Vec<(String, String)> = query_string
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    for pair in &args.query {
        let Some((k, v)) = pair.split_once('=') else {
            return usage(format!("--query {pair:?}: expected KEY=VALUE"));
        };
        query.push((k.to_owned(), v.to_owned()));
    }
    let body = match (&args.input, args.fields.is_empty()) {
        (Some(path), _) => Some(parse_json(&read_input(path)?, &path.display().to_string())?),
        (None, false) => Some(with_fields(Value::Object(Map::new()), &args.fields)?),
        (None, true) => None,
    };
    let limit: u64 = query
        .iter()
        .find(|(k, _)| k == "pagination[limit]")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(100);
    if args.paginate {
        query.retain(|(k, _)| k != "pagination[start]" && k != "pagination[limit]");
    }
    // The endpoint's template lives as long as the command: one path.
    let template: &'static str = Box::leak(path.to_owned().into_boxed_str());
    let endpoint = |extra: &[(String, String)]| -> Result<Endpoint<Value>, CliError> {
        let mut e = Endpoint::<Value>::new(method.clone(), template).named("api");
        for (k, v) in query.iter().chain(extra) {
            e = e.query(k, v);
        }
        if let Some(body) = &body {
            e = e.json(body)?;
        }
        Ok(e)
    };
    let client = ctx.client().await?;
    if !args.paginate {
        return printer.print(client.execute(&endpoint(&[])?).await?.data);
    }
    // Every page by offset, as the items list pages: `pagination[start]`
    // grows by the page's length until a short or empty page, or the total.
    let mut all = Vec::new();
    loop {
        let page = client
            .execute(&endpoint(&[
                ("pagination[start]".into(), all.len().to_string()),
                ("pagination[limit]".into(), limit.to_string()),
            ])?)
            .await?;
        let total = page.total();
        let Value::Array(items) = page.data else {
            return usage(format!(
                "--paginate: {} does not answer with a list",
                args.path
            ));
        };
        let n = items.len() as u64;
        all.extend(items);
        if n < limit || total.is_some_and(|t| all.len() as u64 >= t) {
            break;
        }
    }
    printer.print(Value::Array(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(exprs: &[&str]) -> Vec<(String, String)> {
        let q = items_query(&Query {
            filters: exprs.iter().map(|s| (*s).to_owned()).collect(),
            fields: vec![],
        })
        .unwrap();
        let mut p = q.to_pairs();
        p.truncate(p.len() - 2);
        p
    }

    #[test]
    fn filters_read_as_people_write_them() {
        let p = pairs(&["f_1001=EF2509", "n>=3", "n<9", "t~abc", "s!=x"]);
        assert_eq!(
            p,
            [
                ("filters[f_1001][$eq]", "EF2509"),
                ("filters[n][$gte]", "3"),
                ("filters[n][$lt]", "9"),
                ("filters[t][$contains]", "abc"),
                ("filters[s][$ne]", "x"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let p = pairs(&["a=in:1,2", "b=null", "c=x=y"]);
        assert_eq!(p[0], ("filters[a][$in][0]".into(), "1".into()));
        assert_eq!(p[2], ("filters[b][$null]".into(), "true".into()));
        assert_eq!(p[3], ("filters[c][$eq]".into(), "x=y".into()));
        for bad in ["nothing", "=x", "a b=1"] {
            let e = items_query(&Query {
                filters: vec![bad.into()],
                fields: vec![],
            })
            .unwrap_err();
            assert!(matches!(e, CliError::Usage(_)), "{bad}");
        }
    }

    #[test]
    fn fields_nest_and_parse_json_values() {
        let v = with_fields(
            Value::Object(Map::new()),
            &[
                "data.title=Order 7".into(),
                "data.n=7".into(),
                "x=[1]".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"data": {"title": "Order 7", "n": 7}, "x": [1]})
        );
        assert!(with_fields(Value::Null, &["a=1".into()]).is_err());
        assert!(with_fields(Value::Object(Map::new()), &["novalue".into()]).is_err());
    }
}
