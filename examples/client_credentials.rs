//! A daemon getting a token from Portcullis with the `oauth2` crate, then asking the
//! introspection endpoint about it, as a resource server would.
//!
//!     cargo run --release -- client add --name daemon --grant-type client_credentials --scope reports.read --json
//!     cargo run -p portcullis --example client_credentials -- http://127.0.0.1:8080 CLIENT_ID CLIENT_SECRET reports.read

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [issuer, id, secret, scopes @ ..] = args.as_slice() else {
        eprintln!("usage: client_credentials ISSUER CLIENT_ID CLIENT_SECRET [SCOPE...]");
        std::process::exit(2);
    };
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_auth_uri(AuthUrl::new(format!("{issuer}/authorize"))?)
        .set_token_uri(TokenUrl::new(format!("{issuer}/token"))?);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut request = client.exchange_client_credentials();
    for s in scopes {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let token = request.request_async(&http).await?;
    println!("access token: {}", token.access_token().secret());
    println!("expires in:   {:?}", token.expires_in());
    println!("scopes:       {:?}", token.scopes());

    let introspection: serde_json::Value = http
        .post(format!("{issuer}/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token.access_token().secret().as_str())])
        .send()
        .await?
        .json()
        .await?;
    println!("introspection: {introspection:#}");
    Ok(())
}
