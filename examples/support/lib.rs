//! Shared plumbing of the examples: where to connect, and every flow once.
//!
//! With `CARTHOOKS_API_URL` unset, an example starts the embedded fake server
//! (`carthooks-mock`) and says so in one line. With it set, the example talks to
//! that server using `CARTHOOKS_CLIENT_ID` / `CARTHOOKS_CLIENT_SECRET` (and
//! `CARTHOOKS_USER_TOKEN`, `CARTHOOKS_APP_ID`, `CARTHOOKS_COLLECTION_ID`,
//! `CARTHOOKS_REDIRECT_URI` where a flow needs them). Failures end the example
//! with one line on stderr and exit code 1.

use std::error::Error as StdError;
use std::process::ExitCode;
use std::sync::Arc;

use carthooks::{
    Client, FilterOp, ItemsQuery, LockOptions, OAuthAuthorizeCodeRequest, OAuthConfig, OAuthTokens,
    RefreshToken,
};
use carthooks_mock::MockServer;

/// What a flow's errors are.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Where the examples connect, with what.
pub struct Target {
    /// Base URL of the API.
    pub base_url: String,
    /// Client id and secret.
    pub oauth: OAuthConfig,
    /// A user's own access token, for the user-token and authorization-code flows.
    pub user_token: Option<String>,
    /// App and collection the item examples use.
    pub app_id: u64,
    /// See `app_id`.
    pub collection_id: u64,
    /// Redirect URI registered for the client.
    pub redirect_uri: String,
    _server: Option<MockServer>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_u64(name: &str, default: u64) -> Result<u64, BoxError> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a number").into()),
    }
}

impl Target {
    /// The embedded fake server, or the one `CARTHOOKS_API_URL` names.
    pub fn from_env() -> Result<Self, BoxError> {
        let redirect_uri =
            env("CARTHOOKS_REDIRECT_URI").unwrap_or_else(|| "https://app.example/cb".into());
        match env("CARTHOOKS_API_URL") {
            None => {
                let server = MockServer::start()?;
                println!(
                    "CARTHOOKS_API_URL is not set: using the embedded fake server at {}",
                    server.url()
                );
                Ok(Self {
                    base_url: server.url().to_owned(),
                    oauth: OAuthConfig::new(
                        carthooks_mock::DEFAULT_CLIENT_ID,
                        carthooks_mock::DEFAULT_CLIENT_SECRET,
                    ),
                    user_token: Some(carthooks_mock::DEFAULT_USER_TOKEN.into()),
                    app_id: carthooks_mock::DEFAULT_APP_ID,
                    collection_id: carthooks_mock::DEFAULT_COLLECTION_ID,
                    redirect_uri,
                    _server: Some(server),
                })
            }
            Some(url) => Ok(Self {
                base_url: url,
                oauth: OAuthConfig::from_env()?,
                user_token: env("CARTHOOKS_USER_TOKEN"),
                app_id: env_u64("CARTHOOKS_APP_ID", 0)?,
                collection_id: env_u64("CARTHOOKS_COLLECTION_ID", 0)?,
                redirect_uri,
                _server: None,
            }),
        }
    }

    /// The user token, or a clear error naming the variable.
    pub fn user_token(&self) -> Result<&str, BoxError> {
        self.user_token
            .as_deref()
            .ok_or_else(|| "this flow needs CARTHOOKS_USER_TOKEN (a user's access token)".into())
    }

    /// App and collection ids, or a clear error naming the variables.
    pub fn collection(&self) -> Result<(u64, u64), BoxError> {
        if self.app_id == 0 || self.collection_id == 0 {
            return Err(
                "set CARTHOOKS_APP_ID and CARTHOOKS_COLLECTION_ID for the item calls".into(),
            );
        }
        Ok((self.app_id, self.collection_id))
    }

    /// An async client for this target with `oauth`.
    pub fn client(&self, oauth: OAuthConfig) -> Result<Client, BoxError> {
        Ok(Client::builder()
            .base_url(&self.base_url)
            .oauth(oauth)
            .build()?)
    }
}

/// The error and its causes on one line.
pub fn one_line(e: &(dyn StdError + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s.replace('\n', " ")
}

/// Ends an example: exit 0, or one line on stderr and exit 1.
pub fn finish(result: Result<(), BoxError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn describe(tokens: &OAuthTokens) -> String {
    format!(
        "{} token, expires at {}, refresh token {}",
        tokens.token_type,
        tokens
            .expires_at
            .map_or_else(|| "unknown".into(), |t| t.to_string()),
        if tokens.refresh_token.is_some() {
            "issued"
        } else {
            "none"
        }
    )
}

/// Client credentials → current user → one page of items → create an item.
pub async fn quickstart(target: &Target) -> Result<(), BoxError> {
    let oauth = target
        .oauth
        .clone()
        .on_token_refresh(|t| println!("  [callback] new tokens: {}", describe(t)));
    let client = target.client(oauth)?;

    let tokens = client.initialize_oauth(None).await?;
    println!("1. client credentials: {}", describe(&tokens));

    let me = client.get_current_user().await?;
    println!(
        "2. current user: {} (id {}, tenant {}), trace id {}",
        me.data.username,
        me.data.user_id,
        me.data.tenant_name,
        me.trace_id.as_deref().unwrap_or("-")
    );

    let (app, coll) = target.collection()?;
    let page = client
        .get_items(app, coll, &ItemsQuery::new().limit(5))
        .await?;
    println!(
        "3. items: {} on this page, {} in all",
        page.data.len(),
        page.total().map_or_else(|| "?".into(), |t| t.to_string())
    );

    let created = client
        .create_item(
            app,
            coll,
            &serde_json::json!({"title": "Created by the Rust quickstart", "status": "active"}),
        )
        .await?;
    println!("4. created item {}", created.data["id"]);
    client.close();
    Ok(())
}

/// Machine to machine: client credentials, then a call.
pub async fn client_credentials(target: &Target) -> Result<(), BoxError> {
    let client = target.client(target.oauth.clone())?;
    let tokens = client.initialize_oauth(None).await?;
    println!("client credentials: {}", describe(&tokens));
    let me = client.get_current_user().await?;
    println!("acting as {} (id {})", me.data.username, me.data.user_id);
    Ok(())
}

/// A back end acting for a user: client credentials plus the user's token.
pub async fn user_token(target: &Target) -> Result<(), BoxError> {
    let client = target.client(target.oauth.clone())?;
    let tokens = client.initialize_oauth(Some(target.user_token()?)).await?;
    println!("client credentials for a user: {}", describe(&tokens));
    let me = client.get_current_user().await?;
    println!(
        "acting as {} (id {}, admin {})",
        me.data.username, me.data.user_id, me.data.is_admin
    );
    Ok(())
}

/// A web app: a code is issued for the user, then exchanged for tokens.
pub async fn authorization_code(target: &Target) -> Result<(), BoxError> {
    // Step 1 happens in the user's browser in a real web app; here the user's own
    // session (their token) asks for the code directly.
    let user_session = target.client(target.oauth.clone())?;
    user_session
        .initialize_oauth(Some(target.user_token()?))
        .await?;
    let state = format!("state-{}", std::process::id());
    let answer = user_session
        .get_oauth_authorize_code(&OAuthAuthorizeCodeRequest {
            client_id: target.oauth.client_id.clone(),
            redirect_uri: target.redirect_uri.clone(),
            state: state.clone(),
            target_tenant_id: None,
        })
        .await?;
    println!("1. authorization code issued, redirect carries it");

    // Step 2: the redirect handler checks the state and exchanges the code.
    if answer.data.state().as_deref() != Some(state.as_str()) {
        return Err("the redirect's state does not match: possible CSRF".into());
    }
    let code = answer
        .data
        .code()
        .ok_or("the redirect URL carries no code")?;
    let web = target.client(target.oauth.clone())?;
    let tokens = web
        .exchange_authorization_code(code, &target.redirect_uri)
        .await?;
    println!("2. code exchanged: {}", describe(&tokens));
    let me = web.get_current_user().await?;
    println!(
        "3. signed in as {} (id {})",
        me.data.username, me.data.user_id
    );
    Ok(())
}

/// Persist tokens through the callback, restart from the stored refresh token.
pub async fn token_storage(target: &Target) -> Result<(), BoxError> {
    let path = std::env::temp_dir().join(format!("carthooks-tokens-{}.json", std::process::id()));
    let store = Arc::new(path.clone());
    let save_to = Arc::clone(&store);
    let oauth = target.oauth.clone().on_token_refresh(move |tokens| {
        // Write to a temporary file, then rename: the file is always complete.
        let tmp = save_to.with_extension("tmp");
        let saved = serde_json::to_vec(tokens)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, save_to.as_ref()));
        match saved {
            Ok(()) => println!("  [callback] tokens saved to {}", save_to.display()),
            Err(e) => eprintln!("  [callback] could not save tokens: {e}"),
        }
    });
    let first = target.client(oauth.clone())?;
    first.initialize_oauth(None).await?;
    first.close();
    println!("1. first run obtained tokens and stopped");

    let stored: OAuthTokens = serde_json::from_slice(&std::fs::read(store.as_ref())?)?;
    let refresh: RefreshToken = stored
        .refresh_token
        .ok_or("the stored token set has no refresh token")?;
    let restarted = target.client(oauth.with_refresh_token(refresh))?;
    let me = restarted.get_current_user().await?;
    println!(
        "2. restarted from the stored refresh token, acting as {}",
        me.data.username
    );
    let _ = std::fs::remove_file(store.as_ref());
    Ok(())
}

/// The quickstart on the blocking client (ureq; no async runtime involved).
pub fn blocking(target: &Target) -> Result<(), BoxError> {
    let client = carthooks::blocking::Client::builder()
        .base_url(&target.base_url)
        .oauth(target.oauth.clone())
        .build()?;
    let tokens = client.initialize_oauth(None)?;
    println!("1. client credentials (blocking): {}", describe(&tokens));
    let me = client.get_current_user()?;
    println!(
        "2. current user: {} (id {})",
        me.data.username, me.data.user_id
    );
    let (app, coll) = target.collection()?;
    let page = client.get_items(app, coll, &ItemsQuery::new().limit(5))?;
    println!("3. items: {} on this page", page.data.len());
    Ok(())
}

/// Create → get → update → lock → unlock → list with a filter → all pages → delete.
pub async fn items_crud(target: &Target) -> Result<(), BoxError> {
    let client = target.client(target.oauth.clone())?;
    client.initialize_oauth(None).await?;
    let (app, coll) = target.collection()?;
    let marker = format!("rust-example-{}", std::process::id());

    let created = client
        .create_item(
            app,
            coll,
            &serde_json::json!({"title": "Example order", "f_1001": marker}),
        )
        .await?;
    let id = created.data["id"]
        .as_u64()
        .ok_or("the created item has no numeric id")?;
    println!("1. created item {id}");

    let got = client.get_item(app, coll, id, &["title", "f_1001"]).await?;
    println!(
        "2. got item {id} with fields title, f_1001: {}",
        got.data["fields"]
    );

    let updated = client
        .update_item(
            app,
            coll,
            id,
            &serde_json::json!({"title": "Example order (paid)"}),
        )
        .await?;
    println!("3. updated: title {}", updated.data["title"]);

    let lock_id = format!("lock-{}", std::process::id());
    let lock = client
        .lock_item(
            app,
            coll,
            id,
            &LockOptions::new(&lock_id).subject("invoicing").timeout(60),
        )
        .await?;
    println!(
        "4. locked by {:?} until {:?}",
        lock.data.lock_id, lock.data.expires_at
    );
    let unlock = client.unlock_item(app, coll, id, &lock_id).await?;
    println!("5. unlocked: locked = {}", unlock.data.locked);

    let query = ItemsQuery::new()
        .limit(10)
        .filter("f_1001", FilterOp::Eq, &marker);
    let page = client.get_items(app, coll, &query).await?;
    println!(
        "6. filter f_1001 = {marker}: {} item(s), total {:?}",
        page.data.len(),
        page.total()
    );

    let mut all = client.all_items(app, coll, &ItemsQuery::new().limit(2));
    let mut count = 0;
    while let Some(item) = all.next_item().await {
        item?;
        count += 1;
    }
    println!("7. walked all pages (2 per page): {count} items");

    client.delete_item(app, coll, id).await?;
    match client.get_item(app, coll, id, &[]).await {
        Err(e) if e.status() == Some(carthooks::http::StatusCode::NOT_FOUND) => println!(
            "8. deleted; getting it again is a typed 404 (trace id {})",
            e.trace_id().unwrap_or("-")
        ),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the deleted item is still there".into()),
    }
    Ok(())
}
