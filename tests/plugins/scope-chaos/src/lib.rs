//! A scope policy for the host's failure tests. Requested scope `trap` makes it trap,
//! `loop` makes it spin past its deadline, `oom` makes it allocate past its memory cap.
//! Otherwise it grants the requested scopes the client may have, nothing when no scope
//! was requested (unlike `scope-template`, so a swap between the two is visible), and
//! adds the claim `"policy": "chaos"`. Scope `widen` makes it overstep: it grants `admin`
//! (which no test client is registered with) and sets the claims `sub` and `iss`, which
//! the host must drop.

use portcullis_sdk::scope::{Claim, ClaimTargets, Denial, Grant, Guest, ScopeRequest};

struct Chaos;

impl Guest for Chaos {
    fn resolve(request: ScopeRequest) -> Result<Grant, Denial> {
        let asked = |s: &str| request.requested_scopes.iter().any(|r| r == s);
        if asked("trap") {
            panic!("asked to trap");
        }
        if asked("loop") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if asked("oom") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        let everywhere = ClaimTargets::ACCESS_TOKEN | ClaimTargets::ID_TOKEN | ClaimTargets::USERINFO;
        let claim = |name: &str, value: &str| Claim { name: name.into(), value: value.into(), targets: everywhere };
        let mut scopes: Vec<String> =
            request.requested_scopes.iter().filter(|s| request.client.allowed_scopes.contains(s)).cloned().collect();
        let mut claims = vec![claim("policy", "\"chaos\"")];
        if asked("widen") {
            scopes.push("admin".into());
            claims.push(claim("sub", "\"someone-else\""));
            claims.push(claim("iss", "\"https://evil.example\""));
        }
        Ok(Grant { scopes, claims })
    }
}

portcullis_sdk::export_scope_policy!(Chaos);
