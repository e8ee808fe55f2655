//! Host bindings generated from `sdk/wit`, one module per plugin world.
//! Scope and consent plugins are called synchronously (they import nothing that waits);
//! storage plugins asynchronously, because their database import awaits sqlx.

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
