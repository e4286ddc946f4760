//! The command line's grammar (clap derive): every command, its flags, and
//! the examples its `--help` shows.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes, documented in `--help` and the README.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    an error (the message says what, with the server's trace id)
  2    usage: a flag or argument is wrong
  4    sign-in needed: run `carthooks login`, or set CARTHOOKS_CLIENT_ID and
       CARTHOOKS_CLIENT_SECRET (or CARTHOOKS_ACCESS_TOKEN)
  130  interrupted (Ctrl-C); an export or import says how to resume";

const TOP_EXAMPLES: &str = "\
Examples:
  carthooks login
  carthooks items list APP COLL --filter 'f_1001=EF250920962519'
  carthooks items get APP COLL 42 -o json --jq '.fields'
  carthooks export APP COLL -o items.ndjson
  carthooks import APP COLL items.csv --upsert-by f_1001
  carthooks watch tail --queue https://sqs.us-east-1.amazonaws.com/123/changes APP COLL
  carthooks api GET /v1/apps/APP/collections/COLL/items --paginate --jq 'length'

Environment:
  CARTHOOKS_PROFILE        the profile to use (default: the config's default, else `default`)
  CARTHOOKS_API_URL        the API's base URL (default: the profile's, else https://api.carthooks.com)
  CARTHOOKS_CLIENT_ID      with CARTHOOKS_CLIENT_SECRET: sign in as the app, no `login` needed
  CARTHOOKS_ACCESS_TOKEN   a ready access token, no `login` needed
  CARTHOOKS_CONFIG_DIR     where the config and (without a keyring) the tokens are kept
  NO_COLOR                 no colors";

/// `carthooks`: the Carthooks API from a terminal and from scripts.
#[derive(Debug, Parser)]
#[command(
    name = "carthooks",
    version,
    about = "Work with Carthooks from the command line: items, export and import, changes",
    after_help = format!("{TOP_EXAMPLES}\n\n{EXIT_CODES}"),
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The profile (base URL, client id, default app and collection, tokens).
    #[arg(long, global = true, env = "CARTHOOKS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// The API's base URL (overrides the profile's).
    #[arg(long, global = true, env = "CARTHOOKS_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// Output format: table, json, ndjson or csv (default: a table on a
    /// terminal, JSON when piped). For `export`, the file to write.
    #[arg(short, long, global = true, value_name = "FORMAT|FILE")]
    pub output: Option<String>,
    /// A jq filter applied to the whole result (all pages at once).
    #[arg(long, global = true, value_name = "EXPR")]
    pub jq: Option<String>,
    /// No progress bar, no messages but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More on stderr: -v a line per API call, -vv the SDK's debug events (never a secret).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, for people.
    Table,
    /// JSON, indented.
    Json,
    /// One JSON value a line.
    Ndjson,
    /// Comma-separated values with a header.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in: in the browser (authorization code with PKCE), or as the app.
    #[command(after_help = "\
Examples:
  carthooks login                          # opens the browser
  carthooks login --no-browser             # prints the address to open
  carthooks login --redirect-port 8400     # a fixed port, e.g. for SSH forwarding
  CARTHOOKS_CLIENT_SECRET=… carthooks login --client-credentials

Tokens go to the OS keyring. Where there is none you are asked before anything
is written to a file readable only by you (--insecure-storage: no question).")]
    Login(LoginArgs),
    /// Forget the profile's tokens (and its client secret).
    #[command(after_help = "Example:\n  carthooks logout --profile work")]
    Logout,
    /// Who is signed in, and where the tokens are kept.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Items of a collection.
    Items {
        #[command(subcommand)]
        command: ItemsCommand,
    },
    /// Rows of an item's sub-form field.
    SubItems {
        #[command(subcommand)]
        command: SubItemsCommand,
    },
    /// Users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// A token with which an anonymous form submits (or updates) one item.
    #[command(
        after_help = "Examples:\n  carthooks submission-token APP COLL --options '{\"expire\":3600}'\n  carthooks submission-token APP COLL --item 42"
    )]
    SubmissionToken(SubmissionTokenArgs),
    /// Credentials for uploading a file.
    #[command(after_help = "Example:\n  carthooks upload-token --jq .token")]
    UploadToken,
    /// Start delivering a collection's changes to an SQS queue.
    #[command(
        after_help = "Example:\n  carthooks watch-data APP COLL --queue https://sqs.us-east-1.amazonaws.com/123/changes --name orders"
    )]
    WatchData(WatchDataArgs),
    /// Every item of a collection to a file (`-o FILE`: .ndjson or .csv), resumable.
    #[command(after_help = "\
Examples:
  carthooks export APP COLL -o items.ndjson
  carthooks export APP COLL -o items.csv --filter 'status=open'
  carthooks export APP COLL -o items.ndjson --resume     # after Ctrl-C or a failure
  carthooks export APP COLL > items.ndjson               # to stdout, NDJSON")]
    Export(ExportArgs),
    /// Create (or update, with --upsert-by) an item from each row of a file.
    #[command(after_help = "\
Examples:
  carthooks import APP COLL orders.csv
  carthooks import APP COLL orders.ndjson --upsert-by f_1001
  carthooks import APP COLL orders.csv --upsert-by f_1001 --resume

CSV: a header row names the fields (`title` is the item's title); empty cells
are left out. NDJSON: one object a line; an exported item ({\"title\", \"fields\"})
is imported as its title and fields. Rows that failed, or whose outcome is
unknown, are written to the report file (FILE.problems.ndjson).")]
    Import(ImportArgs),
    /// A collection's changes, as they arrive on an SQS queue.
    Watch {
        #[command(subcommand)]
        command: WatchCommand,
    },
    /// Any API call: METHOD PATH, the SDK's tokens, retries and errors.
    #[command(after_help = "\
Examples:
  carthooks api GET /v1/me
  carthooks api GET /v1/apps/APP/collections/COLL/items --paginate
  carthooks api PUT /v1/apps/APP/collections/COLL/items/42 --field data.title=Renamed
  carthooks api POST /v1/apps/APP/collections/COLL/items --input item.json")]
    Api(ApiArgs),
    /// The profile's settings: the API URL, the client id, a default app and collection.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Shell completions: `carthooks completions bash > /etc/bash_completion.d/carthooks`.
    #[command(
        after_help = "Examples:\n  carthooks completions bash > ~/.local/share/bash-completion/completions/carthooks\n  carthooks completions fish > ~/.config/fish/completions/carthooks.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Print the sign-in address instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// The loopback port of the redirect (default: any free port).
    #[arg(long, value_name = "PORT")]
    pub redirect_port: Option<u16>,
    /// Sign in as the app with its client id and secret (machines, CI).
    #[arg(long)]
    pub client_credentials: bool,
    /// The OAuth client id (default: the profile's, or CARTHOOKS_CLIENT_ID).
    #[arg(
        long,
        env = "CARTHOOKS_CLIENT_ID",
        value_name = "ID",
        hide_env_values = true
    )]
    pub client_id: Option<String>,
    /// Read the client secret from stdin (else CARTHOOKS_CLIENT_SECRET, else a hidden prompt).
    #[arg(long)]
    pub client_secret_stdin: bool,
    /// The authorization server's sign-in page (default: the profile's, else
    /// the API host's /oauth/authorize).
    #[arg(long, value_name = "URL")]
    pub authorize_url: Option<String>,
    /// With no OS keyring, keep the tokens in a file readable only by you, without asking.
    #[arg(long)]
    pub insecure_storage: bool,
    /// How long to wait for the browser.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a setting of the profile (`--profile`, else the default one).
    #[command(after_help = "\
Examples:
  carthooks config set app 3883548539
  carthooks config set collection 3883549661     # then: carthooks items get 42
  carthooks config set api_url https://api.carthooks.com --profile work
  carthooks config set default_profile work

Keys: api_url, authorize_url, client_id, app, collection, default_profile.")]
    Set {
        /// The setting.
        key: String,
        /// Its value.
        value: String,
    },
    /// Print a setting of the profile.
    #[command(after_help = "Example:\n  carthooks config get app")]
    Get {
        /// The setting.
        key: String,
    },
    /// Remove a setting of the profile.
    #[command(after_help = "Example:\n  carthooks config unset collection")]
    Unset {
        /// The setting.
        key: String,
    },
    /// Every profile and its settings (no secret is among them).
    #[command(after_help = "Example:\n  carthooks config list -o json")]
    List,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Who is signed in, the profile, the token's expiry, where tokens are kept.
    #[command(
        after_help = "Examples:\n  carthooks auth status\n  carthooks auth status --profile work -o json"
    )]
    Status,
}

/// The app and collection of a command: as arguments, else the profile's.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// The app id (default: the profile's `app`).
    #[arg(value_name = "APP")]
    pub app: Option<u64>,
    /// The collection id (default: the profile's `collection`).
    #[arg(value_name = "COLL")]
    pub collection: Option<u64>,
}

/// Which items.
#[derive(Debug, Args, Clone, Default)]
pub struct Query {
    /// A filter: FIELD=VALUE, FIELD!=VALUE, FIELD>N, FIELD>=N, FIELD<N,
    /// FIELD<=N, FIELD~TEXT (contains), FIELD=in:A,B, FIELD=nin:A,B,
    /// FIELD=null, FIELD=notnull; repeat for several.
    #[arg(long = "filter", value_name = "EXPR")]
    pub filters: Vec<String>,
    /// Only these fields (comma-separated; `id` always).
    #[arg(long, value_name = "F1,F2", value_delimiter = ',')]
    pub fields: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ItemsCommand {
    /// Items of a collection: one page (--limit), or all of them (--all).
    #[command(after_help = "\
Examples:
  carthooks items list APP COLL
  carthooks items list APP COLL --filter 'f_1001=EF250920962519' -o json
  carthooks items list APP COLL --all --max-items 500 -o csv > items.csv
  carthooks items list APP COLL --all --jq 'map(.title)'")]
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        query: Query,
        /// Page size.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// The offset of the first item.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
        /// With --all, stop after this many items.
        #[arg(long, value_name = "N")]
        max_items: Option<u64>,
    },
    /// One item.
    #[command(
        after_help = "Examples:\n  carthooks items get APP COLL 42\n  carthooks items get APP COLL 42 --fields title,f_1001 -o json"
    )]
    Get {
        #[command(flatten)]
        item: ItemRef,
        #[command(flatten)]
        query: Query,
    },
    /// Create an item from JSON data (--data or --input FILE, `-` for stdin).
    #[command(
        after_help = "Examples:\n  carthooks items create APP COLL --data '{\"title\":\"Order 7\",\"f_1001\":\"EF7\"}'\n  carthooks items create APP COLL --field title='Order 7' --field f_1001=EF7"
    )]
    Create {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        data: Data,
    },
    /// Change an item's fields.
    #[command(after_help = "Example:\n  carthooks items update APP COLL 42 --field status=done")]
    Update {
        #[command(flatten)]
        item: ItemRef,
        #[command(flatten)]
        data: Data,
    },
    /// Delete an item.
    #[command(after_help = "Example:\n  carthooks items delete APP COLL 42")]
    Delete {
        #[command(flatten)]
        item: ItemRef,
    },
    /// Lock an item so others cannot change it.
    #[command(
        after_help = "Example:\n  carthooks items lock APP COLL 42 --lock-id my-job --timeout 300"
    )]
    Lock {
        #[command(flatten)]
        item: ItemRef,
        /// The lock's id (give it again to unlock).
        #[arg(long, value_name = "ID")]
        lock_id: String,
        /// Seconds the lock lasts.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Who holds it, shown to others.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Release a lock.
    #[command(after_help = "Example:\n  carthooks items unlock APP COLL 42 --lock-id my-job")]
    Unlock {
        #[command(flatten)]
        item: ItemRef,
        /// The lock's id.
        #[arg(long, value_name = "ID")]
        lock_id: String,
    },
}

/// APP COLL ITEM (APP and COLL may come from the profile: then only ITEM).
#[derive(Debug, Args, Clone)]
pub struct ItemRef {
    /// APP COLL ITEM, or ITEM with the profile's app and collection.
    #[arg(value_name = "IDS", num_args = 1..=3, required = true)]
    pub ids: Vec<u64>,
}

/// The JSON data of a create or update.
#[derive(Debug, Args, Clone, Default)]
pub struct Data {
    /// The data as JSON.
    #[arg(long, value_name = "JSON", conflicts_with = "input")]
    pub data: Option<String>,
    /// A file holding the JSON data (`-`: stdin).
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// KEY=VALUE (VALUE as JSON when it parses, else a string); a.b=V nests.
    #[arg(long = "field", short = 'F', value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SubItemsCommand {
    /// Add a row to a sub-form field.
    #[command(
        after_help = "Example:\n  carthooks sub-items create APP COLL 42 --subform 1009 --field qty=2"
    )]
    Create {
        #[command(flatten)]
        item: ItemRef,
        /// The sub-form field's id.
        #[arg(long = "subform", value_name = "FIELD")]
        field: u64,
        #[command(flatten)]
        data: Data,
    },
    /// Change a row of a sub-form field.
    #[command(
        after_help = "Example:\n  carthooks sub-items update APP COLL 42 --subform 1009 --row 7 --field qty=3"
    )]
    Update {
        #[command(flatten)]
        row: SubRow,
        #[command(flatten)]
        data: Data,
    },
    /// Delete a row of a sub-form field.
    #[command(
        after_help = "Example:\n  carthooks sub-items delete APP COLL 42 --subform 1009 --row 7"
    )]
    Delete {
        #[command(flatten)]
        row: SubRow,
    },
}

/// One row of a sub-form field: APP COLL ITEM, the field, the row.
#[derive(Debug, Args, Clone)]
pub struct SubRow {
    #[command(flatten)]
    pub item: ItemRef,
    /// The sub-form field's id.
    #[arg(long = "subform", value_name = "FIELD")]
    pub field: u64,
    /// The row's id.
    #[arg(long, value_name = "ROW")]
    pub row: u64,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// The signed-in user (or the app).
    #[command(after_help = "Example:\n  carthooks users me --jq .username")]
    Me,
    /// A user by id.
    #[command(after_help = "Example:\n  carthooks users get 7 -o table")]
    Get {
        /// The user's id.
        id: u64,
    },
}

#[derive(Debug, Args)]
pub struct SubmissionTokenArgs {
    #[command(flatten)]
    pub target: Target,
    /// For updating this item (default: for submitting a new one).
    #[arg(long, value_name = "ITEM")]
    pub item: Option<u64>,
    /// Options as JSON (e.g. '{"expire":3600}').
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub options: String,
}

#[derive(Debug, Args)]
pub struct WatchDataArgs {
    #[command(flatten)]
    pub target: Target,
    /// The SQS queue's URL.
    #[arg(long, value_name = "URL")]
    pub queue: String,
    /// The watch's name.
    #[arg(long, default_value = "carthooks-cli")]
    pub name: String,
    /// How long the watch lasts, in seconds.
    #[arg(long, default_value_t = 432_000)]
    pub age: u64,
    /// Only changes of items matching this filter (JSON).
    #[arg(long, value_name = "JSON")]
    pub filters: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub query: Query,
    /// Go on from where an interrupted export to the same `-o FILE` stopped.
    #[arg(long)]
    pub resume: bool,
    /// Pages fetched at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Stop after this many items.
    #[arg(long, value_name = "N")]
    pub max_items: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// [APP COLL] FILE: the rows, `.csv` or `.ndjson` / `.jsonl` (`-`:
    /// NDJSON from stdin); APP and COLL default to the profile's.
    #[arg(value_name = "APP COLL FILE", num_args = 1..=3, required = true)]
    pub args: Vec<String>,
    /// The field that identifies a row's item (e.g. an order number): a row
    /// whose outcome is unknown, or that an interrupted run left so, is
    /// looked up by it, and never created twice.
    #[arg(long, value_name = "FIELD")]
    pub upsert_by: Option<String>,
    /// Requests at once (at most; fewer while the server throttles).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Never more than this many requests a second.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Skip the rows an interrupted import of the same FILE finished.
    #[arg(long)]
    pub resume: bool,
    /// Where to write the rows that failed or whose outcome is unknown
    /// (default: FILE.problems.ndjson).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Print each change as it arrives (acked once printed); Ctrl-C stops.
    #[command(after_help = "\
Examples:
  carthooks watch tail --queue URL APP COLL
  carthooks watch tail --queue URL APP COLL -o ndjson | jq .item_id

The queue is SQS (AWS credentials and region from the environment, as the AWS
CLI reads them; AWS_ENDPOINT_URL for a local one).")]
    Tail {
        #[command(flatten)]
        target: Target,
        /// The SQS queue's URL.
        #[arg(long, value_name = "URL")]
        queue: String,
        /// Only changes of items matching this filter (JSON).
        #[arg(long, value_name = "JSON")]
        filters: Option<String>,
        /// Stop after this many changes.
        #[arg(long, value_name = "N")]
        max: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// The path under the base URL, e.g. /v1/me (a query string may follow).
    pub path: String,
    /// A body member KEY=VALUE (VALUE as JSON when it parses); a.b=V nests.
    #[arg(long = "field", short = 'F', value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
    /// The body from a file (`-`: stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "fields")]
    pub input: Option<PathBuf>,
    /// A query parameter KEY=VALUE (repeat for several).
    #[arg(long = "query", value_name = "KEY=VALUE")]
    pub query: Vec<String>,
    /// Follow `pagination[start]` until every page is read; the result is one array.
    #[arg(long)]
    pub paginate: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_grammar_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn every_command_shows_an_example_in_its_help() {
        fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, bool)>) {
            let subs: Vec<_> = cmd
                .get_subcommands()
                .filter(|c| c.get_name() != "help")
                .collect();
            if subs.is_empty() {
                let help = cmd
                    .get_after_help()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                out.push((path.clone(), help.contains("Example")));
            }
            for sub in subs {
                leaves(sub, format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut all = Vec::new();
        leaves(&super::Cli::command(), "carthooks".into(), &mut all);
        assert!(all.len() > 20, "{all:?}");
        let missing: Vec<_> = all.iter().filter(|(_, has)| !has).map(|(p, _)| p).collect();
        assert!(missing.is_empty(), "no example in: {missing:?}");
    }
}
