//! `carthooks login`, `logout`, `auth status`.
//!
//! Browser sign-in is the authorization-code flow of a native app (RFC 8252):
//!
//! 1. Where the tokens will go is settled first: the OS keyring if the probe
//!    works; otherwise the user is asked (or `--insecure-storage` said yes)
//!    before anything is written.
//! 2. A listener on `127.0.0.1` (a free port, or `--redirect-port` for SSH
//!    forwarding) is the redirect URI `http://127.0.0.1:PORT/callback`
//!    (§7.3: loopback IP literal, not `localhost`).
//! 3. The sign-in page is opened (or printed, `--no-browser`) with a fresh
//!    `state` and a PKCE S256 challenge (§8.1, RFC 7636).
//! 4. The listener answers every request; only a `GET /callback` whose
//!    `state` matches (constant-time) is taken. Any other — a wrong or
//!    missing state, another path — gets a 400 page and is ignored; the
//!    wait goes on until the real redirect comes or `--timeout` passes.
//! 5. The code is exchanged with the PKCE verifier; the tokens are saved by
//!    the SDK's store; the browser is told the outcome only then.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use carthooks::{AuthorizeCodeResponse, Client, OAuthConfig, Pkce};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::args::LoginArgs;
use crate::config::{Profile, Storage};
use crate::creds::{Secrets, probe_keyring};
use crate::ctx::{Ctx, SignedIn, storage_error};
use crate::error::CliError;

/// Where the tokens go, settled before anything is written.
fn choose_storage(ctx: &Ctx, insecure_ok: bool) -> Result<Storage, CliError> {
    let why = match probe_keyring() {
        Ok(()) => return Ok(Storage::Keyring),
        Err(why) => why,
    };
    let path = ctx.config.token_path(&ctx.profile_name);
    let notice = format!(
        "No OS keyring is available ({why}). The tokens and the client secret would be kept in\n  {}\nreadable only by you, unencrypted.",
        path.display()
    );
    if insecure_ok {
        ctx.say(format!("{notice} (--insecure-storage)"));
        return Ok(Storage::File);
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::Config(format!(
            "{notice}\nNothing was written. Pass --insecure-storage to accept that."
        )));
    }
    eprint!("{notice}\nKeep them there? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Other(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(Storage::File)
    } else {
        Err(CliError::Other(
            "nothing was written; sign in again once a keyring is available, or pass --insecure-storage"
                .into(),
        ))
    }
}

/// The client secret: stdin, the environment, or a hidden prompt.
fn client_secret(args: &LoginArgs) -> Result<String, CliError> {
    let secret = if args.client_secret_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Other(format!("cannot read the client secret: {e}")))?;
        line
    } else if let Some(s) = std::env::var("CARTHOOKS_CLIENT_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        s
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Client secret: ")
            .map_err(|e| CliError::Other(format!("cannot read the client secret: {e}")))?
    } else {
        return Err(CliError::Usage(
            "the client secret: set CARTHOOKS_CLIENT_SECRET, or pass --client-secret-stdin".into(),
        ));
    };
    let secret = secret.trim().to_owned();
    if secret.is_empty() {
        return Err(CliError::Usage("the client secret is empty".into()));
    }
    Ok(secret)
}

pub async fn login(ctx: &mut Ctx, args: LoginArgs) -> Result<(), CliError> {
    let client_id = args
        .client_id
        .clone()
        .or_else(|| ctx.profile.client_id.clone())
        .ok_or_else(|| {
            CliError::Usage(
                "which OAuth client? pass --client-id (or set CARTHOOKS_CLIENT_ID, or client_id in the profile)"
                    .into(),
            )
        })?;
    let secret = client_secret(&args)?;
    let storage = choose_storage(ctx, args.insecure_storage)?;
    let secrets = Secrets::new(&ctx.config, &ctx.profile_name, storage);
    let store = secrets
        .token_store()
        .map_err(|e| storage_error(storage, &e))?;
    let api_url = ctx.api_url();
    let client = Client::builder()
        .base_url(&api_url)
        .oauth(OAuthConfig::new(client_id.clone(), secret.clone()))
        .token_store(std::sync::Arc::new(store))
        .build()?;
    let grant = if args.client_credentials {
        client.initialize_oauth(None).await?;
        "client-credentials"
    } else {
        browser_sign_in(ctx, &client, &client_id, &api_url, &args).await?;
        "browser"
    };
    if let Some(failure) = client.token_store_failure() {
        return Err(CliError::Config(format!(
            "signed in, but the tokens could not be kept: {failure}"
        )));
    }
    secrets
        .save_client_secret(&secret)
        .map_err(|e| storage_error(storage, &e))?;
    let profile = Profile {
        api_url: Some(api_url.clone()),
        authorize_url: args
            .authorize_url
            .clone()
            .or_else(|| ctx.profile.authorize_url.clone()),
        client_id: Some(client_id),
        storage: Some(storage),
        grant: Some(grant.to_owned()),
        ..ctx.profile.clone()
    };
    let name = ctx.profile_name.clone();
    ctx.config.save_profile(&name, profile)?;
    let who = client.get_current_user().await?.data.username;
    ctx.say(format!(
        "Signed in to {api_url} as {who} (profile {name}); tokens kept in {}.",
        secrets.describe()
    ));
    Ok(())
}

/// The sign-in page: `--authorize-url`, the profile's, else
/// `{scheme}://{API host}/oauth/authorize`.
fn authorize_page(ctx: &Ctx, args: &LoginArgs, api_url: &str) -> String {
    if let Some(url) = args
        .authorize_url
        .clone()
        .or(ctx.profile.authorize_url.clone())
    {
        return url;
    }
    let origin = match api_url.find("://") {
        Some(at) => {
            let rest = &api_url[at + 3..];
            let host_end = rest.find('/').map_or(api_url.len(), |i| at + 3 + i);
            &api_url[..host_end]
        }
        None => api_url,
    };
    format!("{origin}/oauth/authorize")
}

async fn browser_sign_in(
    ctx: &Ctx,
    client: &Client,
    client_id: &str,
    api_url: &str,
    args: &LoginArgs,
) -> Result<(), CliError> {
    let listener = TcpListener::bind(("127.0.0.1", args.redirect_port.unwrap_or(0)))
        .await
        .map_err(|e| {
            CliError::Other(format!(
                "cannot listen on 127.0.0.1:{} for the sign-in redirect: {e}",
                args.redirect_port.unwrap_or(0)
            ))
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::Other(e.to_string()))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let state = carthooks::csrf::generate_state()?;
    let pkce = Pkce::new()?;
    let url = carthooks::authorize_url(
        &authorize_page(ctx, args, api_url),
        client_id,
        &redirect_uri,
        &state,
        pkce.challenge(),
    );
    // The address is printed either way (a browser that does not open, a
    // machine reached over SSH); it holds no secret.
    eprintln!("Open this address to sign in:\n  {url}");
    if !args.no_browser && webbrowser::open(&url).is_err() {
        eprintln!("(the browser did not open: copy the address above into one)");
    }
    eprintln!("Waiting for the sign-in to finish in the browser (Ctrl-C cancels)…");
    let wait = async {
        loop {
            let (stream, _) = listener
                .accept()
                .await
                .map_err(|e| CliError::Other(format!("the redirect listener failed: {e}")))?;
            if let Some(done) = callback(stream, &state, client, &redirect_uri, &pkce).await {
                return done;
            }
        }
    };
    tokio::select! {
        done = wait => done,
        () = tokio::time::sleep(Duration::from_secs(args.timeout)) => Err(CliError::SignIn(format!(
            "no sign-in within {} s; run `carthooks login` again", args.timeout
        ))),
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted("sign-in cancelled".into())),
    }
}

/// Handles one connection to the redirect listener: `Some` when it was the
/// sign-in's redirect (its outcome), `None` when it was anything else.
async fn callback(
    mut stream: TcpStream,
    state: &str,
    client: &Client,
    redirect_uri: &str,
    pkce: &Pkce,
) -> Option<Result<(), CliError>> {
    let target = match read_request_target(&mut stream).await {
        Some(t) => t,
        None => {
            respond(
                &mut stream,
                400,
                "Bad request",
                "This is not a sign-in redirect.",
            )
            .await;
            return None;
        }
    };
    let Some(query) = target.strip_prefix("/callback?") else {
        respond(
            &mut stream,
            404,
            "Not found",
            "This is not a sign-in redirect.",
        )
        .await;
        return None;
    };
    let redirect: AuthorizeCodeResponse = serde_json::from_value(
        serde_json::json!({ "redirect_url": format!("{redirect_uri}?{query}") }),
    )
    .ok()?;
    if !redirect
        .state()
        .is_some_and(|got| carthooks::csrf::verify_state(state, &got))
    {
        eprintln!("A redirect with a wrong state was refused (not this sign-in's); still waiting…");
        respond(
            &mut stream,
            400,
            "Refused",
            "This sign-in link is not the one this terminal started. Nothing was done.",
        )
        .await;
        return None;
    }
    let Some(code) = redirect.code() else {
        let error = query
            .split('&')
            .find_map(|p| p.strip_prefix("error="))
            .unwrap_or("no code");
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        respond(
            &mut stream,
            200,
            "Not signed in",
            "The sign-in was not completed. You can close this tab.",
        )
        .await;
        return Some(Err(CliError::SignIn(format!(
            "the sign-in was not completed ({error})"
        ))));
    };
    match client
        .exchange_authorization_code(code, redirect_uri, Some(pkce.verifier()))
        .await
    {
        Ok(_) => {
            respond(
                &mut stream,
                200,
                "Signed in",
                "You are signed in to the Carthooks command line. You can close this tab and go back to the terminal.",
            )
            .await;
            Some(Ok(()))
        }
        Err(e) => {
            respond(
                &mut stream,
                200,
                "Not signed in",
                "The sign-in could not be completed; the terminal says why.",
            )
            .await;
            Some(Err(CliError::Sdk(e)))
        }
    }
}

/// The request target of a `GET` (at most 8 KiB of head, 10 s to send it).
async fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some(target.to_owned()),
        _ => None,
    }
}

async fn respond(stream: &mut TcpStream, status: u16, title: &str, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} — Carthooks</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}</style></head>\
<body><h1 id=\"outcome\">{title}</h1><p id=\"message\">{message}</p></body></html>"
    );
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

pub fn logout(ctx: &mut Ctx) -> Result<(), CliError> {
    let Some(storage) = ctx.profile.storage else {
        ctx.say(format!("Profile {} is not signed in.", ctx.profile_name));
        return Ok(());
    };
    let secrets = Secrets::new(&ctx.config, &ctx.profile_name, storage);
    let found = secrets.forget().map_err(|e| storage_error(storage, &e))?;
    let name = ctx.profile_name.clone();
    let profile = Profile {
        storage: None,
        grant: None,
        ..ctx.profile.clone()
    };
    ctx.config.save_profile(&name, profile)?;
    ctx.say(if found {
        format!(
            "Signed out of profile {}: its tokens and client secret were removed from {}.",
            ctx.profile_name,
            secrets.describe()
        )
    } else {
        format!("Profile {} had no tokens kept.", ctx.profile_name)
    });
    Ok(())
}

pub async fn status(ctx: &Ctx) -> Result<(), CliError> {
    let printer = ctx.printer()?;
    let (client, how) = ctx.client_and_how().await?;
    let me = client.get_current_user().await?;
    let tokens = client.get_current_tokens();
    let expires_at = tokens.as_ref().and_then(|t| t.expires_at);
    let (source, kept) = match &how {
        SignedIn::AccessToken => ("CARTHOOKS_ACCESS_TOKEN", "the environment".to_owned()),
        SignedIn::Environment => (
            "CARTHOOKS_CLIENT_ID and CARTHOOKS_CLIENT_SECRET",
            "memory only".to_owned(),
        ),
        SignedIn::Profile(secrets) => ("carthooks login", secrets.describe()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires_in = expires_at.map(|at| at.saturating_sub(now));
    let expires_at = expires_at.map(utc);
    printer.print(serde_json::json!({
        "profile": ctx.profile_name,
        "api_url": ctx.api_url(),
        "user": me.data.username,
        "signed_in_with": source,
        "tokens_kept_in": kept,
        "access_token_expires_at": expires_at,
        "access_token_expires_in_seconds": expires_in,
        "refresh_token": tokens.as_ref().is_some_and(|t| t.refresh_token.is_some()),
    }))
}

/// Unix seconds as an RFC 3339 UTC time (`2026-12-03T14:00:00Z`), by the
/// civil-from-days algorithm (Howard Hinnant's), for `auth status`.
fn utc(unix: u64) -> String {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_times_read_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_796_392_581), "2026-12-04T13:56:21Z");
    }
}
