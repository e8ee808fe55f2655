//! Shadow mode: a scope policy whose manifest says `shadow-of = "<live policy>"` is asked
//! every time the live one is, after it and with the same input. Its answer never changes
//! the live one: it is compared with it, and each difference (other scopes, other claims,
//! another denial, or the shadow's fault) is counted in
//! `portcullis_policy_shadow_diffs_total{plugin}` and logged at INFO, at most once per
//! [`SHADOW_LOG_EVERY_SECS`] per shadow, the line saying how many differences went unlogged
//! since the last. The shadow's call adds its own time to the request it shadows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::scope::{PolicyDenial, PolicyGrant, ScopeInput};
use super::{PluginError, PluginKind, PolicyHost};
use crate::limits::SHADOW_LOG_EVERY_SECS;

/// When a shadow last logged a difference, and how many it has not logged since.
#[derive(Default)]
pub(super) struct Sampler {
    last: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl Sampler {
    /// Whether a difference seen at `now` is logged: if so, how many were not logged before
    /// it; if not, it is counted among those.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock();
        let every = Duration::from_secs(SHADOW_LOG_EVERY_SECS);
        if last.is_some_and(|t| now.saturating_duration_since(t) < every) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

type Answer = Result<Result<PolicyGrant, PolicyDenial>, PluginError>;

/// An answer in one canonical line: the scopes sorted, the claims by name with their targets,
/// or the denial's error; a fault as such.
fn summary(answer: &Answer) -> String {
    match answer {
        Ok(Ok(grant)) => {
            let mut scopes = grant.scopes.clone();
            scopes.sort();
            let mut claims: Vec<String> = grant
                .claims
                .iter()
                .map(|c| {
                    let targets = [(c.access_token, "at"), (c.id_token, "id"), (c.userinfo, "ui")]
                        .into_iter()
                        .filter_map(|(on, t)| on.then_some(t))
                        .collect::<Vec<_>>()
                        .join(",");
                    format!("{}={}[{targets}]", c.name, c.value)
                })
                .collect();
            claims.sort();
            format!("granted [{}] claims [{}]", scopes.join(" "), claims.join(" "))
        }
        Ok(Err(denial)) => match denial {
            PolicyDenial::InvalidScope(_) => "denied invalid_scope".into(),
            PolicyDenial::AccessDenied(_) => "denied access_denied".into(),
            PolicyDenial::UnauthorizedClient(_) => "denied unauthorized_client".into(),
            PolicyDenial::StepUp(_) => "denied step_up".into(),
        },
        Err(fault) => format!("faulted: {fault}"),
    }
}

impl PolicyHost {
    /// Asks every shadow of the live policy `live` what it would answer `input`, and counts
    /// and logs each answer that differs from the live one's. Nothing is compared with a live
    /// policy that faulted.
    pub(super) fn shadow(&self, live: &str, input: &ScopeInput<'_>, answer: &Answer) {
        if answer.is_err() {
            return;
        }
        let loaded = self.loaded();
        let mut shadows = loaded
            .values()
            .filter(|p| p.manifest.kind == PluginKind::ScopePolicy && p.manifest.shadow_of.as_deref() == Some(live))
            .peekable();
        if shadows.peek().is_none() {
            return;
        }
        let ours = summary(answer);
        for shadow in shadows {
            let theirs = summary(&self.resolve_with(shadow, input));
            if theirs == ours {
                continue;
            }
            metrics::counter!("portcullis_policy_shadow_diffs_total", "plugin" => shadow.name.clone()).increment(1);
            if let Some(unlogged) = shadow.shadow_log.admit(Instant::now()) {
                tracing::info!(
                    plugin = %shadow.name,
                    live,
                    live_answer = %ours,
                    shadow_answer = %theirs,
                    unlogged,
                    "a shadow scope policy answered otherwise than the live one"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shadow_logs_one_difference_per_period_and_counts_the_rest() {
        let sampler = Sampler::default();
        let start = Instant::now();
        assert_eq!(sampler.admit(start), Some(0));
        assert_eq!(sampler.admit(start + Duration::from_secs(1)), None);
        assert_eq!(sampler.admit(start + Duration::from_secs(SHADOW_LOG_EVERY_SECS - 1)), None);
        assert_eq!(sampler.admit(start + Duration::from_secs(SHADOW_LOG_EVERY_SECS)), Some(2));
        assert_eq!(sampler.admit(start + Duration::from_secs(SHADOW_LOG_EVERY_SECS + 1)), None);
    }
}
