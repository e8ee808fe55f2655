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
    });
}

pub mod storage_world {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "storage-plugin",
        imports: { default: async },
        exports: { default: async },
    });
}
