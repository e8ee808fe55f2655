//! `portcullis:plugin@0.5.0`, the current contract: its bindings, generated from `sdk/wit`,
//! and a file per plugin kind that calls the kind in the server's own types. Each serves
//! the earlier versions whose interface of the kind is the same: [`super::adapter`].

pub(in crate::plugin) mod consent;
pub(in crate::plugin) mod grant;
pub(in crate::plugin) mod scope;
pub(in crate::plugin) mod storage;

/// The storage world's bindings: its `database` and `log` imports, as the host lends them to
/// every version (which have the same), and the `storage` interface.
pub(in crate::plugin) mod storage_world {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "storage-plugin",
        imports: { "portcullis:plugin/database": async },
    });
}

/// The scope world with the key-value cache (`scope-policy-plugin-kv`): a plugin of the plain
/// world links against it as well, and its `kv` import is the one every `-kv` world shares.
pub(in crate::plugin) mod scope_world {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "scope-policy-plugin-kv",
        with: { "portcullis:plugin/log": super::storage_world::portcullis::plugin::log },
    });
}

mod consent_world {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "consent-ui-plugin",
        with: { "portcullis:plugin/log": super::storage_world::portcullis::plugin::log },
    });
}

mod grant_world {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "grant-type-plugin",
        with: { "portcullis:plugin/log": super::storage_world::portcullis::plugin::log },
    });
}
