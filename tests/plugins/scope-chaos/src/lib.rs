//! A scope policy for the host's failure tests. Requested scope `trap` makes it trap,
//! `loop` makes it spin past its deadline, `oom` makes it allocate past its memory cap.
//! Otherwise it grants the requested scopes the client may have, nothing when no scope
//! was requested (unlike `scope-template`, so a swap between the two is visible), and
//! adds the claim `"policy": "chaos"`. Scope `widen` makes it overstep: it grants `admin`
//! (which no test client is registered with) and sets the claims `sub` and `iss`, which
//! the host must drop. Scope `echo` adds the claim `input`: what the host told it, as JSON.
//! A scope `may_act:<sub>` adds the claim `may_act` naming `<sub>` (RFC 8693 §4.4: who may
//! act for the user by token exchange) and sets `act`, which the host must drop. Scope
//! `step_up` makes it ask for a stronger sign-in (`step-up`) unless the person signed in
//! with two factors (`acr` `"2"`).

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
        let two_factors = request.authentication.as_ref().is_some_and(|a| a.acr == "2");
        if asked("step_up") && !two_factors {
            return Err(Denial::StepUp("`step_up` needs two factors".into()));
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
        if asked("echo") {
            claims.push(claim("input", &echo(&request)));
        }
        if let Some(actor) = request.requested_scopes.iter().find_map(|s| s.strip_prefix("may_act:")) {
            claims.push(claim("may_act", &format!("{{\"sub\":{}}}", json_string(actor))));
            claims.push(claim("act", "{\"sub\":\"forged\"}"));
        }
        Ok(Grant { scopes, claims })
    }
}

/// The request as a JSON object (no serde in a plugin this small: strings are escaped by hand).
/// `v` as a JSON string.
fn json_string(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn echo(r: &ScopeRequest) -> String {
    fn s(v: &str) -> String {
        json_string(v)
    }
    fn list(v: &[String]) -> String {
        format!("[{}]", v.iter().map(|x| s(x)).collect::<Vec<_>>().join(","))
    }
    fn opt(v: Option<String>) -> String {
        v.unwrap_or_else(|| "null".into())
    }
    let user = r.user.as_ref().map(|u| {
        format!(
            "{{\"id\":{},\"username\":{},\"name\":{},\"email\":{},\"company\":{},\"roles\":{}}}",
            s(&u.id),
            s(&u.username),
            s(&u.name),
            s(&u.email),
            opt(u.company.as_deref().map(s)),
            list(&u.roles)
        )
    });
    let template = r.client.template.as_ref().map(|t| format!("{{\"name\":{},\"scopes\":{}}}", s(&t.name), list(&t.scopes)));
    let organization =
        r.organization.as_ref().map(|o| format!("{{\"id\":{},\"available_roles\":{}}}", s(&o.id), list(&o.available_roles)));
    let instance = r.instance.as_ref().map(|i| {
        format!("{{\"added_by\":{},\"added_by_roles\":{},\"scopes\":{}}}", s(&i.added_by), list(&i.added_by_roles), list(&i.scopes))
    });
    let authentication = r.authentication.as_ref().map(|a| {
        format!("{{\"acr\":{},\"amr\":{},\"auth_time\":{}}}", s(&a.acr), list(&a.amr), a.auth_time)
    });
    format!(
        "{{\"grant_type\":{},\"owner\":{},\"template\":{},\"organization\":{},\"instance\":{},\"user\":{},\"roles\":{},\"original_scopes\":{},\"acr_values\":{},\"claims_parameter\":{},\"authentication\":{}}}",
        s(&r.grant_type),
        opt(r.client.owner.as_deref().map(s)),
        opt(template),
        opt(organization),
        opt(instance),
        opt(user),
        list(&r.roles),
        opt(r.original_scopes.as_deref().map(list)),
        list(&r.acr_values),
        opt(r.claims_parameter.as_deref().map(s)),
        opt(authentication),
    )
}

portcullis_sdk::export_scope_policy!(Chaos);
