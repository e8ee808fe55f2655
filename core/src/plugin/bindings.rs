//! Host bindings generated from `sdk/wit`, one module per plugin world and contract version.
//! Scope and consent plugins are called synchronously (they import nothing that waits);
//! storage plugins asynchronously, because their database import awaits sqlx.
//!
//! Nothing outside `plugin/` names these types: the rest of the server speaks the plain
//! types of [`super::scope`], [`super::consent`] and [`super::store`].

/// `portcullis:plugin@0.2.0`, the current contract.
pub mod v2 {
    pub mod scope_world {
        wasmtime::component::bindgen!({
            path: "../sdk/wit",
            world: "scope-policy-plugin",
        });
    }

    pub mod consent_world {
        wasmtime::component::bindgen!({
            path: "../sdk/wit",
            world: "consent-ui-plugin",
            with: { "portcullis:plugin/log": super::scope_world::portcullis::plugin::log },
        });
    }

    pub mod storage_world {
        wasmtime::component::bindgen!({
            path: "../sdk/wit",
            world: "storage-plugin",
            imports: { "portcullis:plugin/database": async },
            exports: { default: async },
            with: { "portcullis:plugin/log": super::scope_world::portcullis::plugin::log },
        });
    }
}

/// `portcullis:plugin@0.1.0`: scope and consent plugins built for it keep loading.
pub mod v1 {
    pub mod scope_world {
        wasmtime::component::bindgen!({
            path: "../sdk/wit/0.1.0",
            world: "scope-policy-plugin",
        });
    }

    pub mod consent_world {
        wasmtime::component::bindgen!({
            path: "../sdk/wit/0.1.0",
            world: "consent-ui-plugin",
            with: { "portcullis:plugin/log": super::scope_world::portcullis::plugin::log },
        });
    }
}
