//! The smallest program a user would write to read one item with the SDK:
//! the start-up figure's other side (`cli_startup`). Reads
//! `CARTHOOKS_API_URL`, `CARTHOOKS_CLIENT_ID` and `CARTHOOKS_CLIENT_SECRET`;
//! prints the item as JSON. `get_item APP COLL ITEM`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let (app, coll, item) = (
        args.next().ok_or("APP")??,
        args.next().ok_or("COLL")??,
        args.next().ok_or("ITEM")??,
    );
    let client = carthooks_reqwest::Client::builder()
        .from_env()
        .oauth(carthooks_core::OAuthConfig::from_env()?)
        .build()?;
    client.initialize_oauth(None).await?;
    let found = client.get_item(app, coll, item, &[]).await?;
    println!("{}", serde_json::to_string_pretty(&found.data)?);
    Ok(())
}
