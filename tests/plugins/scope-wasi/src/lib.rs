//! A scope policy for the host's WASI tests: it imports WASI 0.2 and reports, as claims,
//! what the host gave it. `env`: how many environment variables it sees; `args`: how many
//! arguments; `dirs`: how many preopened directories (each a way to read files); `socket`:
//! what became of a TCP connection to `127.0.0.1:<port>` when a scope `connect:<port>` is
//! requested (`connected`, or the error); `random`: whether randomness answered two
//! different numbers; `clock`: whether the wall clock is past 2020. It writes a line to
//! stdout and one to stderr. It grants the requested scopes the client may have.

use portcullis_sdk::scope::{Claim, ClaimTargets, Denial, Grant, Guest, ScopeRequest};
use wasip2::sockets::network::{IpSocketAddress, Ipv4SocketAddress};

struct Wasi;

impl Guest for Wasi {
    fn resolve(request: ScopeRequest) -> Result<Grant, Denial> {
        let everywhere = ClaimTargets::ACCESS_TOKEN | ClaimTargets::ID_TOKEN | ClaimTargets::USERINFO;
        let claim = |name: &str, value: String| Claim { name: name.into(), value, targets: everywhere };
        let _ = wasip2::cli::stdout::get_stdout().blocking_write_and_flush(b"scope-wasi: resolving\n");
        let _ = wasip2::cli::stderr::get_stderr().blocking_write_and_flush(b"scope-wasi: on stderr\n");
        let env = wasip2::cli::environment::get_environment().len();
        let args = wasip2::cli::environment::get_arguments().len();
        let dirs = wasip2::filesystem::preopens::get_directories().len();
        let random = wasip2::random::random::get_random_u64() != wasip2::random::random::get_random_u64();
        let clock = wasip2::clocks::wall_clock::now().seconds > 1_577_836_800;
        let mut claims = vec![
            claim("env", env.to_string()),
            claim("args", args.to_string()),
            claim("dirs", dirs.to_string()),
            claim("random", random.to_string()),
            claim("clock", clock.to_string()),
        ];
        if let Some(port) = request.requested_scopes.iter().find_map(|s| s.strip_prefix("connect:")) {
            let outcome = match port.parse::<u16>() {
                Ok(port) => connect(port),
                Err(_) => "not a port".into(),
            };
            claims.push(claim("socket", format!("\"{outcome}\"")));
        }
        let scopes =
            request.requested_scopes.iter().filter(|s| request.client.allowed_scopes.contains(s)).cloned().collect();
        Ok(Grant { scopes, claims })
    }
}

/// Tries a TCP connection to 127.0.0.1:`port`: `connected`, or where it failed.
fn connect(port: u16) -> String {
    use wasip2::sockets::{instance_network, network::IpAddressFamily, tcp_create_socket};
    let socket = match tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(e) => return format!("create: {}", e.name()),
    };
    let network = instance_network::instance_network();
    let at = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (127, 0, 0, 1) });
    if let Err(e) = socket.start_connect(&network, at) {
        return format!("connect: {}", e.name());
    }
    socket.subscribe().block();
    match socket.finish_connect() {
        Ok(_) => "connected".into(),
        Err(e) => format!("connect: {}", e.name()),
    }
}

portcullis_sdk::export_scope_policy!(Wasi);
