//! The built-in policies, compiled into the binary so that a server started without a
//! policies directory still has a storage, a scope policy and a consent UI.

pub struct BuiltinPlugin {
    pub name: &'static str,
    pub manifest: &'static str,
    pub wasm: &'static [u8],
}

macro_rules! builtin {
    ($name:literal) => {
        BuiltinPlugin {
            name: $name,
            manifest: include_str!(concat!("../../../policies/", $name, ".toml")),
            wasm: include_bytes!(concat!("../../../policies/", $name, ".wasm")),
        }
    };
}

pub const BUILTIN: &[BuiltinPlugin] = &[
    builtin!("storage-sql"),
    builtin!("scope-template"),
    builtin!("scope-role-intersection"),
    builtin!("consent-default"),
    builtin!("consent-compact"),
];
