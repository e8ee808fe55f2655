//! Host bindings generated from `sdk/wit`, one module per plugin world and contract version.
//! Scope and consent plugins are called synchronously (they import nothing that waits);
//! storage plugins asynchronously, because their database import awaits sqlx.
//!
//! Nothing outside `plugin/` names these types: the rest of the server speaks the plain
//! types of [`super::scope`], [`super::consent`] and [`super::store`].

/// The bindings of one contract version's worlds, from the WIT at `$path`: scope and consent,
/// with `storage` the storage world, with `grant` the grant-type world too. Every world
/// of a version shares the version's `log` interface (and so its host implementation).
macro_rules! contract_version {
    ($path:literal) => {
        pub mod scope_world {
            wasmtime::component::bindgen!({
                path: $path,
                world: "scope-policy-plugin",
            });
        }

        pub mod consent_world {
            wasmtime::component::bindgen!({
                path: $path,
                world: "consent-ui-plugin",
                with: { "portcullis:plugin/log": super::scope_world::portcullis::plugin::log },
            });
        }
    };
    ($path:literal, storage) => {
        contract_version!($path);

        pub mod storage_world {
            wasmtime::component::bindgen!({
                path: $path,
                world: "storage-plugin",
                imports: { "portcullis:plugin/database": async },
                exports: { default: async },
                with: { "portcullis:plugin/log": super::scope_world::portcullis::plugin::log },
            });
        }
    };
    ($path:literal, storage, grant) => {
        contract_version!($path, storage);

        pub mod grant_world {
            wasmtime::component::bindgen!({
                path: $path,
                world: "grant-type-plugin",
                with: { "portcullis:plugin/log": super::scope_world::portcullis::plugin::log },
            });
        }
    };
}

/// `portcullis:plugin@0.4.0`, the current contract.
pub mod v4 {
    contract_version!("../sdk/wit", storage, grant);
}

/// `portcullis:plugin@0.3.0`: plugins of every kind built for it keep loading.
pub mod v3 {
    contract_version!("../sdk/wit/0.3.0", storage, grant);
}

/// `portcullis:plugin@0.2.0`: scope, consent and storage plugins built for it keep loading.
pub mod v2 {
    contract_version!("../sdk/wit/0.2.0", storage);
}

/// `portcullis:plugin@0.1.0`: scope and consent plugins built for it keep loading.
pub mod v1 {
    contract_version!("../sdk/wit/0.1.0");
}
