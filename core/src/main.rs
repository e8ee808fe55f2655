//! The `portcullis` command: the server and the operator's CLI, both on one configuration.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config::Config;
use portcullis::registry::{self, ClientSummary, NewClient, NewUser};
use portcullis::server::{self, Portcullis};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "OAuth 2.0 / OpenID Connect server with WebAssembly policies")]
struct Cli {
    /// Configuration file (default: ./portcullis.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OAuth 2.0 / OIDC endpoints.
    Serve,
    /// Manage users of the built-in directory.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        company: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and (confidential clients) its secret, once.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A public client (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        /// Skip the consent page for this client.
        #[arg(long)]
        skip_consent: bool,
        /// A resource server: may introspect tokens issued to any client.
        #[arg(long)]
        introspect_any: bool,
        /// Print as a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List,
    /// Delete a client and everything issued to it.
    Delete { id: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new active signing key; older keys stay published until their tokens expire.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::from(2);
        }
    };
    portcullis::telemetry::init(config.server.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let listen = config.server.listen;
            let app = Portcullis::open(config, true).await?;
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!(address = %listener.local_addr()?, issuer = %app.config.issuer(), "serving");
            server::serve(app, listener).await
        }
        Command::User(cmd) => {
            let app = Portcullis::open(config, false).await?;
            match cmd {
                UserCommand::Add { username, email, name, company, roles, password_stdin: _ } => {
                    let mut password = String::new();
                    std::io::stdin().read_to_string(&mut password)?;
                    let password = password.trim_end_matches(['\n', '\r']).to_owned();
                    let user = registry::add_user(
                        &app.storage,
                        NewUser { username, password, email, name, company, roles, organization_id: None },
                    )
                    .await?;
                    println!("{}", serde_json::to_string(&user)?);
                }
                UserCommand::List => {
                    for u in app.storage.list_users().await? {
                        println!("{}", serde_json::to_string(&registry::UserSummary::from(&u))?);
                    }
                }
            }
            Ok(())
        }
        Command::Client(cmd) => {
            let app = Portcullis::open(config, false).await?;
            match cmd {
                ClientCommand::Add {
                    name,
                    redirect_uris,
                    grant_types,
                    scopes,
                    public,
                    skip_consent,
                    introspect_any,
                    json,
                } => {
                    let scopes =
                        scopes.iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()).map(str::to_owned).collect();
                    let new = NewClient {
                        name,
                        redirect_uris,
                        grant_types,
                        scopes,
                        public,
                        skip_consent,
                        introspect_any,
                        ..Default::default()
                    };
                    let registered = registry::register_client(&app.storage, new).await?;
                    if json {
                        println!("{}", serde_json::to_string(&registered)?);
                    } else {
                        println!("client_id:     {}", registered.client_id);
                        if let Some(secret) = &registered.client_secret {
                            println!("client_secret: {secret}");
                            println!("(the secret is shown only now; store it safely)");
                        }
                    }
                }
                ClientCommand::List => {
                    for c in app.storage.list_clients().await? {
                        println!("{}", serde_json::to_string(&ClientSummary::from(&c))?);
                    }
                }
                ClientCommand::Delete { id } => {
                    if !app.storage.delete_client(&id).await? {
                        anyhow::bail!("no client `{id}`");
                    }
                    println!("deleted {id}");
                }
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let app = Portcullis::open(config, false).await?;
            let kid = app.keys.rotate(app.config.longest_token_lifetime()).await?;
            println!("new signing key: {kid}");
            Ok(())
        }
    }
}
