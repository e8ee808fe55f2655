//! Serves the webhook: `webhook-receiver --issuer http://127.0.0.1:8080 --mode jwks`.
//!
//! Introspection mode reads the resource server's own client credentials from
//! `WEBHOOK_CLIENT_ID` and `WEBHOOK_CLIENT_SECRET` (never from the command line, where every
//! user of the machine could read them).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use portcullis_resource_server::Validator;

#[derive(Parser)]
#[command(about = "A webhook that accepts only Portcullis access tokens with scope apps.webhook:execute")]
struct Args {
    /// The Portcullis issuer (tokens' `iss`; its keys are at `{issuer}/jwks.json`).
    #[arg(long, env = "WEBHOOK_ISSUER", default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// `jwks`: verify tokens locally (fast; a revoked token works until it expires).
    /// `introspection`: ask the issuer about every token (sees revocation at once).
    #[arg(long, env = "WEBHOOK_MODE", value_enum, default_value_t = Mode::Jwks)]
    mode: Mode,
    /// Where to listen.
    #[arg(long, env = "WEBHOOK_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The introspection endpoint; `{issuer}/introspect` unless set.
    #[arg(long, env = "WEBHOOK_INTROSPECTION_URL")]
    introspection_url: Option<String>,
    /// Require this `aud` (a Portcullis access token's audience is its issuer).
    #[arg(long, env = "WEBHOOK_AUDIENCE")]
    audience: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Jwks,
    Introspection,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let validator = match args.mode {
        Mode::Jwks => Validator::jwks(&args.issuer),
        Mode::Introspection => {
            let (Ok(id), Ok(secret)) = (std::env::var("WEBHOOK_CLIENT_ID"), std::env::var("WEBHOOK_CLIENT_SECRET"))
            else {
                eprintln!(
                    "webhook-receiver: --mode introspection needs WEBHOOK_CLIENT_ID and WEBHOOK_CLIENT_SECRET \
                     (a confidential client registered with --introspect-any)"
                );
                return ExitCode::from(2);
            };
            let url = args
                .introspection_url
                .clone()
                .unwrap_or_else(|| format!("{}/introspect", args.issuer.trim_end_matches('/')));
            Validator::introspection(url, id, secret).with_issuer(&args.issuer)
        }
    };
    let validator = match args.audience {
        Some(audience) => validator.with_audience(audience),
        None => validator,
    }
    .with_realm("webhook");

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("webhook-receiver: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %args.listen, issuer = %args.issuer, ?validator, "serving POST /webhook");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, webhook_receiver::router(validator)).with_graceful_shutdown(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook-receiver: {e}");
            ExitCode::FAILURE
        }
    }
}
