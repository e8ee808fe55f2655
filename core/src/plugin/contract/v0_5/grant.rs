//! The grant interface of 0.4.0, the same since 0.3.0 (the first with it): an extension
//! grant's [`GrantAsk`] as its request, its answer as a [`GrantAnswer`] or a [`GrantRefusal`].

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::grant_world::exports::portcullis::plugin::grant as wit;
use crate::plugin::call::CallState;
use crate::plugin::contract::{Export, Exported, GrantWorld};
use crate::plugin::grant::{GrantAnswer, GrantAsk, GrantRefusal, GrantSubject};
use crate::plugin::{Contract, Linked, PluginKind};

struct Grant {
    pre: InstancePre<CallState>,
    grant_types: Export<(), (Vec<String>,)>,
    exchange: Export<(wit::GrantRequest,), (Result<wit::Answer, wit::Refusal>,)>,
}

/// Links a grant-type plugin of `contract`.
pub(in crate::plugin) fn link(pre: InstancePre<CallState>, contract: Contract) -> wasmtime::Result<Linked> {
    let exported = Exported::of(&pre, PluginKind::GrantType, contract)?;
    let grant = Grant { grant_types: exported.func("grant-types")?, exchange: exported.func("exchange")?, pre };
    Ok(Linked::Grant(Box::new(grant)))
}

impl GrantWorld for Grant {
    fn grant_types(&self, store: &mut Store<CallState>) -> wasmtime::Result<Vec<String>> {
        let instance = self.pre.instantiate(&mut *store)?;
        self.exchange.check(store, &instance)?;
        Ok(self.grant_types.call(store, &instance, ())?.0)
    }

    fn exchange(
        &self,
        store: &mut Store<CallState>,
        ask: &GrantAsk<'_>,
        config: &str,
    ) -> wasmtime::Result<Result<GrantAnswer, GrantRefusal>> {
        let request = wit::GrantRequest {
            grant_type: ask.grant_type.to_owned(),
            client_id: ask.client_id.to_owned(),
            parameters: ask.parameters.clone(),
            issuer: ask.issuer.to_owned(),
            token_endpoint: ask.token_endpoint.to_owned(),
            now: ask.now,
            config: config.to_owned(),
        };
        let instance = self.pre.instantiate(&mut *store)?;
        let (answer,) = self.exchange.call(store, &instance, (request,))?;
        Ok(answer.map(answered).map_err(refusal))
    }
}

fn answered(a: wit::Answer) -> GrantAnswer {
    GrantAnswer {
        subject: match a.subject {
            wit::Subject::User(u) => GrantSubject::User(u),
            wit::Subject::Client => GrantSubject::Client,
            wit::Subject::Other(s) => GrantSubject::Other(s),
        },
        scopes: a.scopes,
        single_use: a.single_use,
    }
}

fn refusal(r: wit::Refusal) -> GrantRefusal {
    match r {
        wit::Refusal::InvalidRequest(m) => GrantRefusal::InvalidRequest(m),
        wit::Refusal::InvalidGrant(m) => GrantRefusal::InvalidGrant(m),
        wit::Refusal::InvalidScope(m) => GrantRefusal::InvalidScope(m),
        wit::Refusal::UnauthorizedClient(m) => GrantRefusal::UnauthorizedClient(m),
    }
}
