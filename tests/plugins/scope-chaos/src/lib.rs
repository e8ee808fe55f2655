//! A scope policy for the host's failure tests. Requested scope `trap` makes it trap,
//! `loop` makes it spin past its deadline, `oom` makes it allocate past its memory cap.
//! Otherwise it grants the requested scopes the client may have, nothing when no scope
//! was requested (unlike `scope-template`, so a swap between the two is visible), and
//! adds the claim `"policy": "chaos"`.

use portcullis_sdk::scope::{Claim, Denial, Grant, Guest, ScopeRequest};

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
        let scopes = request.requested_scopes.iter().filter(|s| request.client.allowed_scopes.contains(s)).cloned().collect();
        Ok(Grant { scopes, claims: vec![Claim { name: "policy".into(), value: "\"chaos\"".into(), id_token: false }] })
    }
}

portcullis_sdk::export_scope_policy!(Chaos);
