//! The Rust guest SDK for Portcullis plugins.
//!
//! A Portcullis plugin is a WebAssembly component that implements one of the worlds of
//! the `portcullis:plugin@0.5.0` contract (`sdk/wit/`, a file per interface). This crate holds
//! the generated bindings for each world, one module per world, plus a few helpers:
//!
//! | world                 | cargo feature | module                      | trait to implement          | export macro                  |
//! |-----------------------|---------------|-----------------------------|-----------------------------|-------------------------------|
//! | `scope-policy-plugin` | `scope`       | [`scope`](crate::scope)     | `portcullis_sdk::scope::Guest`   | [`export_scope_policy!`]  |
//! | `consent-ui-plugin`   | `consent`     | [`consent`](crate::consent) | `portcullis_sdk::consent::Guest` | [`export_consent_ui!`]    |
//! | `storage-plugin`      | `storage`     | [`storage`](crate::storage) | `portcullis_sdk::storage::Guest` | [`export_storage!`]       |
//! | `grant-type-plugin`   | `grant`       | [`grant`](crate::grant)     | `portcullis_sdk::grant::Guest`   | [`export_grant_type!`]    |
//!
//! A plugin is a `cdylib` crate that depends on this one with only its world's feature:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! portcullis-sdk = { path = "../../sdk/rust", default-features = false, features = ["scope"] }
//! ```
//!
//! and implements the world's `Guest` trait on a type it then exports:
//!
//! ```ignore
//! use portcullis_sdk::scope::{Denial, Grant, Guest, ScopeRequest};
//!
//! struct EverythingAllowed;
//!
//! impl Guest for EverythingAllowed {
//!     fn resolve(request: ScopeRequest) -> Result<Grant, Denial> {
//!         portcullis_sdk::log::debug("granting every allowed scope");
//!         let scopes = portcullis_sdk::scopes::intersect(
//!             &request.requested_scopes,
//!             &request.client.allowed_scopes,
//!         );
//!         Ok(Grant { scopes, claims: Vec::new() })
//!     }
//! }
//!
//! portcullis_sdk::export_scope_policy!(EverythingAllowed);
//! ```
//!
//! A storage plugin reaches the database the host lends it through
//! [`storage::db`](crate::storage::db) (`query`, `execute`, `batch`, `begin`, `commit`,
//! `rollback`, `dialect`).
//!
//! Build the crate for `wasm32-unknown-unknown`, then turn the core module into a
//! component with `portcullis-componentize IN.wasm OUT.wasm` (`plugins/build.sh` does
//! both and writes the manifest).
//!
//! Everything a call needs arrives as arguments. Diagnostics go through [`log`], which the
//! host tags with the plugin's name. A scope, consent or grant-type plugin whose manifest
//! grants it (`kv = true` under `[grants]`) has a key-value cache of its own, [`kv`]; one
//! that does not call [`kv`] does not import it and needs no grant (the bindings are those
//! of each world's `-kv` variant, which adds the cache to it; only what a plugin calls is
//! imported). Outbound HTTP, granted by
//! `http = ["https://..."]`, is WASI's standard `wasi:http/outgoing-handler` (the `wasip2`
//! crate's bindings, for instance).

#![forbid(unsafe_op_in_unsafe_fn)]

// Lets the generated code and the export macros name this crate the same way from
// inside it and from a plugin crate.
extern crate self as portcullis_sdk;

#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

#[cfg(all(feature = "arena", target_arch = "wasm32"))]
mod arena;

/// With the `arena` feature, a call's allocations come from a 64 KiB static arena: a fresh
/// instance then never grows its memory for a small call.
#[cfg(all(feature = "arena", target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: arena::Bump = arena::Bump;

/// Exports a type implementing [`scope::Guest`] as the plugin's `scope` interface.
#[cfg(feature = "scope")]
#[doc(inline)]
pub use scope::bindings::export_scope_policy;

/// Exports a type implementing [`consent::Guest`] as the plugin's `consent` interface.
#[cfg(feature = "consent")]
#[doc(inline)]
pub use consent::bindings::export_consent_ui;

/// Exports a type implementing [`storage::Guest`] as the plugin's `storage` interface.
#[cfg(feature = "storage")]
#[doc(inline)]
pub use storage::bindings::export_storage;

/// Exports a type implementing [`grant::Guest`] as the plugin's `grant` interface.
#[cfg(feature = "grant")]
#[doc(inline)]
pub use grant::bindings::export_grant_type;

/// Bindings of the `scope-policy-plugin` world: implement [`scope::Guest`] and export it
/// with [`export_scope_policy!`].
#[cfg(feature = "scope")]
pub mod scope {
    #[doc(hidden)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "portcullis:plugin/scope-policy-plugin-kv@0.5.0",
            runtime_path: "portcullis_sdk::__rt",
            pub_export_macro: true,
            export_macro_name: "export_scope_policy",
            default_bindings_module: "portcullis_sdk::scope::bindings",
        });
    }

    pub use bindings::exports::portcullis::plugin::scope::{
        Authentication, Claim, ClaimTargets, Client, ClientTemplate, Denial, Grant, Guest,
        Instance, Organization, ScopeRequest, User,
    };
}

/// Bindings of the `consent-ui-plugin` world: implement [`consent::Guest`] and export it
/// with [`export_consent_ui!`].
#[cfg(feature = "consent")]
pub mod consent {
    #[doc(hidden)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "portcullis:plugin/consent-ui-plugin-kv@0.5.0",
            runtime_path: "portcullis_sdk::__rt",
            pub_export_macro: true,
            export_macro_name: "export_consent_ui",
            default_bindings_module: "portcullis_sdk::consent::bindings",
        });
    }

    pub use bindings::exports::portcullis::plugin::consent::{
        Application, Connection, ConnectionsPage, ConsentPage, DeviceOutcome, DevicePage,
        ErrorPage, FactorError, Guest, LoginError, LoginPage, LogoutPage, PageContext,
        PasskeyCeremony, PasskeyView, PasswordError, PasswordPage, SecondFactorPage,
        SecurityNotice, SecurityPage, TotpEnrolment, TotpState,
    };
}

/// Bindings of the `storage-plugin` world: implement [`storage::Guest`] and export it
/// with [`export_storage!`]; the database the host lends is [`storage::db`].
#[cfg(feature = "storage")]
pub mod storage {
    #[doc(hidden)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "portcullis:plugin/storage-plugin@0.5.0",
            runtime_path: "portcullis_sdk::__rt",
            pub_export_macro: true,
            export_macro_name: "export_storage",
            default_bindings_module: "portcullis_sdk::storage::bindings",
        });
    }

    pub use bindings::exports::portcullis::plugin::storage::{
        Guest, KeyRef, Record, RecordRef, Revised, StorageError, Stored, Write,
    };

    /// The `database` import: one pool (SQLite or PostgreSQL) chosen by the operator.
    ///
    /// Write `?` for every parameter in both dialects; the host renumbers them for
    /// PostgreSQL. `dialect()` is the WIT's `get-dialect`, for DDL that differs.
    pub mod db {
        pub use super::bindings::portcullis::plugin::database::{
            DbError, Dialect, Rows, Value, batch, begin, commit, execute, get_dialect,
            get_dialect as dialect, query, rollback,
        };
    }
}

/// Bindings of the `grant-type-plugin` world: implement [`grant::Guest`] and export it
/// with [`export_grant_type!`]. The plugin's manifest `[config]` table arrives with every
/// request as JSON text.
#[cfg(feature = "grant")]
pub mod grant {
    #[doc(hidden)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "portcullis:plugin/grant-type-plugin-kv@0.5.0",
            runtime_path: "portcullis_sdk::__rt",
            pub_export_macro: true,
            export_macro_name: "export_grant_type",
            default_bindings_module: "portcullis_sdk::grant::bindings",
        });
    }

    pub use bindings::exports::portcullis::plugin::grant::{
        Answer, GrantRequest, Guest, Refusal, Subject,
    };
}

/// Writes into the server's log, tagged with the plugin's name.
pub mod log {
    /// How loud a log line is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Level {
        Debug,
        Info,
        Warn,
        Error,
    }

    /// Logs `message` at `level`.
    ///
    /// Every world imports the same `portcullis:plugin/log` interface; this goes
    /// through whichever world the crate was built with.
    #[allow(unused_variables)]
    pub fn log(level: Level, message: &str) {
        macro_rules! via {
            ($module:path) => {{
                use $module as l;
                let level = match level {
                    Level::Debug => l::Level::Debug,
                    Level::Info => l::Level::Info,
                    Level::Warn => l::Level::Warn,
                    Level::Error => l::Level::Error,
                };
                l::log(level, message);
            }};
        }
        #[cfg(feature = "scope")]
        via!(crate::scope::bindings::portcullis::plugin::log);
        #[cfg(all(feature = "consent", not(feature = "scope")))]
        via!(crate::consent::bindings::portcullis::plugin::log);
        #[cfg(all(feature = "storage", not(any(feature = "scope", feature = "consent"))))]
        via!(crate::storage::bindings::portcullis::plugin::log);
        #[cfg(all(feature = "grant", not(any(feature = "scope", feature = "consent", feature = "storage"))))]
        via!(crate::grant::bindings::portcullis::plugin::log);
    }

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// The plugin's own key-value cache, with expiry (`portcullis:plugin/kv`): what a call
/// looked up, kept for the next calls, on every replica of the server. Lent only with
/// `kv = true` under the manifest's `[grants]`: a plugin that calls none of these functions
/// does not import the interface.
#[cfg(any(feature = "scope", feature = "consent", feature = "grant"))]
pub mod kv {
    #[cfg(feature = "scope")]
    use crate::scope::bindings::portcullis::plugin::kv as k;
    #[cfg(all(feature = "consent", not(feature = "scope")))]
    use crate::consent::bindings::portcullis::plugin::kv as k;
    #[cfg(all(feature = "grant", not(any(feature = "scope", feature = "consent"))))]
    use crate::grant::bindings::portcullis::plugin::kv as k;

    /// Why the host did not do what was asked.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Error {
        /// The key is empty or too long (the bound is in the text).
        InvalidKey(String),
        /// The value is too long (the bound is in the text).
        TooLarge(String),
        /// The time to live is zero or too long (the bound is in the text).
        InvalidTtl(String),
        /// The host's storage could not be reached.
        Unavailable(String),
    }

    impl core::fmt::Display for Error {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                Error::InvalidKey(m) => write!(f, "invalid key: {m}"),
                Error::TooLarge(m) => write!(f, "value too large: {m}"),
                Error::InvalidTtl(m) => write!(f, "invalid time to live: {m}"),
                Error::Unavailable(m) => write!(f, "unavailable: {m}"),
            }
        }
    }

    fn error(e: k::KvError) -> Error {
        match e {
            k::KvError::InvalidKey(m) => Error::InvalidKey(m),
            k::KvError::TooLarge(m) => Error::TooLarge(m),
            k::KvError::InvalidTtl(m) => Error::InvalidTtl(m),
            k::KvError::Unavailable(m) => Error::Unavailable(m),
        }
    }

    /// The value stored under `key`; `None` when there is none or it expired.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        k::get(key).map_err(error)
    }

    /// Stores `value` under `key` for `ttl_seconds` seconds, replacing what was there.
    pub fn set(key: &str, value: &[u8], ttl_seconds: u32) -> Result<(), Error> {
        k::set(key, value, ttl_seconds).map_err(error)
    }

    /// Removes `key` (no error when it is not there).
    pub fn delete(key: &str) -> Result<(), Error> {
        k::delete(key).map_err(error)
    }
}

/// Helpers for scope lists, which the contract passes as ordered lists without duplicates.
pub mod scopes {
    /// True when `scope` is in `list`.
    pub fn contains(list: &[String], scope: &str) -> bool {
        list.iter().any(|s| s == scope)
    }

    /// The scopes of `requested` that are also in `allowed`, in `requested`'s order,
    /// without duplicates.
    pub fn intersect(requested: &[String], allowed: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(requested.len().min(allowed.len()));
        for s in requested {
            if contains(allowed, s) && !contains(&out, s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Keeps the scopes of `list` that are in `allowed` (in place, keeping order) and
    /// drops duplicates.
    pub fn retain_allowed(list: &mut Vec<String>, allowed: &[String]) {
        let mut i = 0;
        while i < list.len() {
            if contains(allowed, &list[i]) && !contains(&list[..i], &list[i]) {
                i += 1;
            } else {
                list.remove(i);
            }
        }
    }

    /// The scopes of `list` that are not in `allowed`, in `list`'s order.
    pub fn difference<'a>(list: &'a [String], allowed: &[String]) -> Vec<&'a str> {
        list.iter()
            .filter(|s| !contains(allowed, s))
            .map(String::as_str)
            .collect()
    }

    /// Splits an OAuth `scope` parameter (space-separated) into a list without duplicates.
    pub fn parse(scope: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            if !contains(&out, s) {
                out.push(s.to_string());
            }
        }
        out
    }

    /// Joins a scope list into an OAuth `scope` parameter (space-separated).
    pub fn join<S: AsRef<str>>(list: &[S]) -> String {
        let mut out = String::new();
        for (i, s) in list.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s.as_ref());
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn v(s: &[&str]) -> Vec<String> {
            s.iter().map(|s| s.to_string()).collect()
        }

        #[test]
        fn intersect_keeps_request_order() {
            assert_eq!(
                intersect(&v(&["email", "openid", "x"]), &v(&["openid", "email"])),
                v(&["email", "openid"])
            );
        }

        #[test]
        fn retain_and_difference() {
            let mut l = v(&["a", "b", "a", "c"]);
            retain_allowed(&mut l, &v(&["c", "a"]));
            assert_eq!(l, v(&["a", "c"]));
            assert_eq!(difference(&v(&["a", "b", "c"]), &v(&["b"])), vec!["a", "c"]);
        }

        #[test]
        fn parse_and_join() {
            assert_eq!(parse("  openid  email openid "), v(&["openid", "email"]));
            assert_eq!(join(&v(&["openid", "email"])), "openid email");
            assert_eq!(join::<String>(&[]), "");
        }
    }
}
