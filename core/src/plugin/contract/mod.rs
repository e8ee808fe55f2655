//! The contract's versions, as the host calls each plugin kind of each.
//!
//! [`v0_5`] is the current contract's glue: its generated bindings and, for each kind, the
//! server's own types turned into its records and its answers turned back ([`ScopeWorld`],
//! [`ConsentWorld`], [`StorageWorld`], [`GrantWorld`]: what the rest of the host calls).
//! An earlier version has a file for each kind whose interface it had otherwise: an adapter
//! that turns the current version's records into its own and its answers into the server's
//! (`v0_4::consent`, `v0_4::scope`, `v0_3::consent`, `v0_2::consent`, `v0_1::scope`). A version that left a kind's interface as
//! the next one has it has no file for it: its plugins of that kind are called through the
//! same glue, under their own version's interface name, since the component model compares
//! records by their structure, not their package. [`adapter`] says which glue serves a kind
//! of a version; adding a version is a file for each kind it changes, and its lines there.
//!
//! The imports are the same in every version that has them, and are lent under each
//! version's name: [`super::log::link`], [`super::database::link`].

/// An earlier version's bindings of `world`, generated from its WIT at `path`, as the module
/// `bindings` of its adapter.
macro_rules! bindings {
    ($path:literal, $world:literal) => {
        mod bindings {
            wasmtime::component::bindgen!({ path: $path, world: $world });
        }
    };
}

pub(super) mod v0_5;
mod v0_4 {
    pub(super) mod consent;
    pub(super) mod scope;
}
mod v0_3 {
    pub(super) mod consent;
}
mod v0_2 {
    pub(super) mod consent;
}
mod v0_1 {
    pub(super) mod scope;
}

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;

use wasmtime::Store;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, ComponentType, Instance, InstancePre, Lift, Lower,
};

use super::call::CallState;
use super::consent::Page;
use super::grant::{GrantAnswer, GrantAsk, GrantRefusal};
use super::scope::{PolicyDenial, PolicyGrant, ScopeInput};
use super::store::{KeyRef, RecordRef, StoreError, Stored, Write};
use super::{Contract, Linked, PluginKind};

/// A scope policy, pre-linked.
pub(super) trait ScopeWorld: Send + Sync {
    /// Asks it about one grant, on a new instance in `store`.
    fn resolve(
        &self,
        store: &mut Store<CallState>,
        input: &ScopeInput<'_>,
    ) -> wasmtime::Result<Result<PolicyGrant, PolicyDenial>>;
}

/// A consent UI, pre-linked.
pub(super) trait ConsentWorld: Send + Sync {
    /// The locales it renders, most preferred first. Asked once, at load, when every function
    /// it exports is checked against the records of its version too.
    fn locales(&self, store: &mut Store<CallState>) -> wasmtime::Result<Vec<String>>;
    /// Whether its version has the page (an earlier version lacks the pages added after it).
    fn renders(&self, page: &Page) -> bool;
    /// The page's HTML, or its refusal.
    fn render(&self, store: &mut Store<CallState>, page: &Page) -> wasmtime::Result<Result<String, String>>;
}

/// What an asynchronous call of a plugin comes to.
pub(super) type Pending<'a, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>;

/// What a storage call comes to: `T`, or why not.
pub(super) type Storing<'a, T> = Pending<'a, Result<T, StoreError>>;

/// What a storage call that finds records comes to.
pub(super) type Found<'a> = Storing<'a, Vec<Stored>>;

/// A storage plugin, pre-linked. Each call is on a new instance in `store`; what it is given
/// is turned into the plugin's records before the call begins, so the call borrows only the
/// glue and the store.
pub(super) trait StorageWorld: Send + Sync {
    /// Its schema migrated; a refusal in its own words.
    fn migrate<'a>(&'a self, store: &'a mut Store<CallState>) -> Pending<'a, Result<(), String>>;
    fn get<'a>(&'a self, store: &'a mut Store<CallState>, refs: &[RecordRef]) -> Storing<'a, Vec<Option<Stored>>>;
    fn find<'a>(&'a self, store: &'a mut Store<CallState>, key: &KeyRef) -> Found<'a>;
    /// A page of `limit` records of `kind` at most, after the id `after`.
    fn list<'a>(&'a self, store: &'a mut Store<CallState>, kind: &str, after: Option<&str>, limit: u32) -> Found<'a>;
    fn apply<'a>(&'a self, store: &'a mut Store<CallState>, writes: Vec<Write>) -> Storing<'a, ()>;
    fn purge_expired<'a>(&'a self, store: &'a mut Store<CallState>, now: i64) -> Storing<'a, u64>;
}

/// A grant-type plugin, pre-linked.
pub(super) trait GrantWorld: Send + Sync {
    /// The grant types it answers. Asked once, at load, when every function it exports is
    /// checked too.
    fn grant_types(&self, store: &mut Store<CallState>) -> wasmtime::Result<Vec<String>>;
    /// Asks it about one request; `config` is the manifest's, JSON text.
    fn exchange(
        &self,
        store: &mut Store<CallState>,
        ask: &GrantAsk<'_>,
        config: &str,
    ) -> wasmtime::Result<Result<GrantAnswer, GrantRefusal>>;
}

/// Makes the glue of a plugin of `contract`, pre-linked, from the functions it exports.
pub(super) type Adapt = fn(InstancePre<CallState>, Contract) -> wasmtime::Result<Linked>;

/// The glue that calls plugins of `kind` built for `contract`: the file of the version that
/// last changed the kind's interface, or why the host links no such plugin.
pub(super) fn adapter(kind: PluginKind, contract: Contract) -> Result<Adapt, String> {
    use Contract::{V1, V2, V3, V4, V5};
    Ok(match (kind, contract) {
        (PluginKind::ScopePolicy, V5) => v0_5::scope::link::<v0_5::scope::Current>,
        (PluginKind::ScopePolicy, V4 | V3 | V2) => v0_5::scope::link::<v0_4::scope::Records>,
        (PluginKind::ScopePolicy, V1) => v0_5::scope::link::<v0_1::scope::Records>,
        (PluginKind::ConsentUi, V5) => v0_5::consent::link::<v0_5::consent::Current>,
        (PluginKind::ConsentUi, V4) => v0_5::consent::link::<v0_4::consent::Records>,
        (PluginKind::ConsentUi, V3) => v0_5::consent::link::<v0_3::consent::Records>,
        (PluginKind::ConsentUi, V2 | V1) => v0_5::consent::link::<v0_2::consent::Records>,
        (PluginKind::Storage, V5 | V4 | V3 | V2) => v0_5::storage::link,
        (PluginKind::Storage, V1) => {
            return Err("storage plugins must implement portcullis:plugin@0.2.0 or later (its generic records)".into());
        }
        (PluginKind::GrantType, V5 | V4 | V3) => v0_5::grant::link,
        (PluginKind::GrantType, V2 | V1) => {
            return Err(
                "grant-type plugins implement portcullis:plugin@0.3.0 or later (the first with the kind)".into()
            );
        }
    })
}

/// An interface's name under a contract version: `portcullis:plugin/scope@0.3.0`.
pub(super) fn interface(name: &str, contract: Contract) -> String {
    format!("portcullis:plugin/{name}@{}", contract.version())
}

/// A record the host hands a plugin.
pub(super) trait Param: ComponentType + Lower + Send + Sync + 'static {}
impl<T: ComponentType + Lower + Send + Sync + 'static> Param for T {}

/// A record a plugin answers.
pub(super) trait Answer: ComponentType + Lift + Send + Sync + 'static {}
impl<T: ComponentType + Lift + Send + Sync + 'static> Answer for T {}

/// The interface a pre-linked plugin exports, found by its name under the plugin's version.
pub(super) struct Exported<'a> {
    pre: &'a InstancePre<CallState>,
    name: String,
    index: ComponentExportIndex,
}

impl<'a> Exported<'a> {
    pub(super) fn of(pre: &'a InstancePre<CallState>, kind: PluginKind, contract: Contract) -> wasmtime::Result<Self> {
        let name = interface(kind.interface(), contract);
        let index = pre
            .component()
            .get_export_index(None, &name)
            .ok_or_else(|| wasmtime::format_err!("no exported instance named `{name}`"))?;
        Ok(Self { pre, name, index })
    }

    /// Its function `func`, whose types are `P` and `R`.
    pub(super) fn func<P, R>(&self, func: &str) -> wasmtime::Result<Export<P, R>> {
        let index =
            self.pre.component().get_export_index(Some(&self.index), func).ok_or_else(|| {
                wasmtime::format_err!("instance export `{}` does not have export `{func}`", self.name)
            })?;
        Ok(Export { index, checked: OnceLock::new(), types: PhantomData })
    }

    /// Its function `func` if the version has it.
    pub(super) fn func_if<P, R>(&self, has: bool, func: &str) -> wasmtime::Result<Option<Export<P, R>>> {
        has.then(|| self.func(func)).transpose()
    }
}

/// A function a plugin exports, found when it was linked, with its parameters `P` and results
/// `R` as host types: they are checked against the plugin's own each time an instance gets it,
/// by structure, so that one version's records serve the versions that have the same.
pub(super) struct Export<P, R> {
    index: ComponentExportIndex,
    /// Set once an instance's function was found to have these types: every instance of
    /// the component has the same function, so later calls are not checked again.
    checked: OnceLock<()>,
    types: PhantomData<fn(P) -> R>,
}

impl<P, R> Export<P, R>
where
    P: ComponentNamedList + Lower + Send + Sync,
    R: ComponentNamedList + Lift + Send + Sync + 'static,
{
    fn typed(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<wasmtime::component::TypedFunc<P, R>> {
        if self.checked.get().is_none() {
            let typed = instance.get_typed_func::<P, R>(&mut *store, &self.index)?;
            let _ = self.checked.set(());
            return Ok(typed);
        }
        let func = instance
            .get_func(&mut *store, self.index)
            .ok_or_else(|| wasmtime::format_err!("the instance has no function at the export's index"))?;
        // SAFETY: `func` is the export at `self.index` of an instance of the component this
        // export was found in (an `Export` belongs to one plugin's `InstancePre`), and that
        // export's type was checked against `P` and `R` on an earlier instance. A
        // component's function types are fixed when it is compiled, and the contract's
        // interfaces have no resource types, whose checks could differ per instance.
        Ok(unsafe { wasmtime::component::TypedFunc::new_unchecked(func) })
    }

    /// Whether `instance`'s function has these types.
    pub(super) fn check(&self, store: &mut Store<CallState>, instance: &Instance) -> wasmtime::Result<()> {
        self.typed(store, instance).map(drop)
    }

    /// Calls it on `instance`.
    pub(super) fn call(&self, store: &mut Store<CallState>, instance: &Instance, params: P) -> wasmtime::Result<R> {
        self.typed(store, instance)?.call(&mut *store, params)
    }

    /// Calls it on `instance`, asynchronously.
    pub(super) async fn call_async(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
        params: P,
    ) -> wasmtime::Result<R> {
        self.typed(store, instance)?.call_async(&mut *store, params).await
    }
}
