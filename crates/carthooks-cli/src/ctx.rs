//! What every command starts from: the profile, the printer, and a client
//! signed in the first way that applies:
//!
//! 1. `CARTHOOKS_ACCESS_TOKEN`: that token, as it is (no refresh);
//! 2. `CARTHOOKS_CLIENT_ID` and `CARTHOOKS_CLIENT_SECRET`: the app, with a
//!    token obtained now and kept in memory only (CI, scripts);
//! 3. the profile's tokens from `carthooks login`, refreshed by the SDK and
//!    saved back where login put them (shared safely by commands running at
//!    once);
//! 4. otherwise: exit 4, "run `carthooks login`".

use carthooks::{Client, OAuthConfig};

use crate::args::{Global, ItemRef, Target};
use crate::config::{Config, DEFAULT_API_URL, Profile, Storage};
use crate::creds::Secrets;
use crate::error::{CliError, usage};
use crate::output::Printer;

pub struct Ctx {
    pub global: Global,
    pub config: Config,
    pub profile_name: String,
    pub profile: Profile,
}

/// How the client was signed in, for `auth status`.
pub enum SignedIn {
    AccessToken,
    Environment,
    Profile(Secrets),
}

impl Ctx {
    pub fn new(global: Global) -> Result<Self, CliError> {
        let config = Config::load()?;
        let profile_name = config.profile_name(global.profile.as_deref());
        let profile = config.profile(&profile_name);
        Ok(Self {
            global,
            config,
            profile_name,
            profile,
        })
    }

    pub fn printer(&self) -> Result<Printer, CliError> {
        Printer::new(self.global.output.as_deref(), self.global.jq.as_deref())
    }

    /// `--api-url` / `CARTHOOKS_API_URL`, else the profile's, else the default.
    pub fn api_url(&self) -> String {
        self.global
            .api_url
            .clone()
            .or_else(|| self.profile.api_url.clone())
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
    }

    /// A message on stderr unless `--quiet`.
    pub fn say(&self, message: impl std::fmt::Display) {
        if !self.global.quiet {
            eprintln!("{message}");
        }
    }

    /// The app and collection: as given, else the profile's.
    pub fn target(&self, target: &Target) -> Result<(u64, u64), CliError> {
        let app = target.app.or(self.profile.app);
        let collection = target.collection.or(self.profile.collection);
        match (app, collection) {
            (Some(a), Some(c)) => Ok((a, c)),
            _ => usage(format!(
                "which app and collection? give APP COLL, or set `app` and `collection` in profile {}",
                self.profile_name
            )),
        }
    }

    /// APP COLL ITEM, or ITEM with the profile's app and collection.
    pub fn item(&self, item: &ItemRef) -> Result<(u64, u64, u64), CliError> {
        match item.ids[..] {
            [app, coll, id] => Ok((app, coll, id)),
            [id] => {
                let (app, coll) = self.target(&Target {
                    app: None,
                    collection: None,
                })?;
                Ok((app, coll, id))
            }
            _ => usage("give APP COLL ITEM, or ITEM with the profile's app and collection"),
        }
    }

    fn builder(&self) -> carthooks::ClientBuilder<Client> {
        Client::builder().base_url(self.api_url())
    }

    /// A signed-in client (see the module docs).
    pub async fn client(&self) -> Result<Client, CliError> {
        Ok(self.client_and_how().await?.0)
    }

    pub async fn client_and_how(&self) -> Result<(Client, SignedIn), CliError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(token) = env("CARTHOOKS_ACCESS_TOKEN") {
            let client = self.builder().access_token(token).build()?;
            return Ok((client, SignedIn::AccessToken));
        }
        if env("CARTHOOKS_CLIENT_ID").is_some() && env("CARTHOOKS_CLIENT_SECRET").is_some() {
            let client = self.builder().oauth(OAuthConfig::from_env()?).build()?;
            client.initialize_oauth(None).await?;
            return Ok((client, SignedIn::Environment));
        }
        let (Some(storage), Some(client_id)) = (self.profile.storage, &self.profile.client_id)
        else {
            return Err(CliError::SignIn(format!(
                "not signed in (profile {}): run `carthooks login`, or set CARTHOOKS_CLIENT_ID and CARTHOOKS_CLIENT_SECRET",
                self.profile_name
            )));
        };
        let secrets = Secrets::new(&self.config, &self.profile_name, storage);
        let secret = match env("CARTHOOKS_CLIENT_SECRET") {
            Some(s) => s,
            None => secrets
                .client_secret()
                .map_err(|e| storage_error(storage, &e))?
                .ok_or_else(|| {
                    CliError::SignIn(format!(
                        "profile {} has no client secret: run `carthooks login` again",
                        self.profile_name
                    ))
                })?,
        };
        let store = secrets
            .token_store()
            .map_err(|e| storage_error(storage, &e))?;
        let client = self
            .builder()
            .oauth(OAuthConfig::new(client_id.clone(), secret))
            .token_store(std::sync::Arc::new(store))
            .build()?;
        if let Some(failure) = client.token_store_failure() {
            return Err(CliError::Config(format!(
                "cannot read the tokens of profile {}: {failure}",
                self.profile_name
            )));
        }
        if client.get_current_tokens().is_none() {
            if self.profile.grant.as_deref() == Some("client-credentials") {
                client.initialize_oauth(None).await?;
            } else {
                return Err(CliError::SignIn(format!(
                    "not signed in (profile {}): run `carthooks login`",
                    self.profile_name
                )));
            }
        }
        Ok((client, SignedIn::Profile(secrets)))
    }
}

pub fn storage_error(storage: Storage, e: &std::io::Error) -> CliError {
    let place = match storage {
        Storage::Keyring => "the OS keyring",
        Storage::File => "the token file",
    };
    CliError::Config(format!("cannot use {place}: {e}"))
}
