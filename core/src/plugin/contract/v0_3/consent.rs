//! The consent interface of 0.3.0: 0.4.0's without the password page, and without the
//! connections page's link to it.

use wasmtime::component::{ComponentType, Lower};

use crate::plugin::contract::v0_4::consent as v0_4;
use crate::plugin::contract::v0_5::consent::{AddedPages, Connection, ConnectionsPage, PageContext, PageRecords};

/// 0.3.0's connections page, the one record of its own: the records in it are 0.5.0's, the
/// same as its own.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(in crate::plugin) struct Connections {
    context: PageContext,
    #[component(name = "user-name")]
    user_name: String,
    connections: Vec<Connection>,
    revoked: Option<String>,
}

impl From<ConnectionsPage> for Connections {
    fn from(page: ConnectionsPage) -> Self {
        let ConnectionsPage { context, user_name, connections, revoked, .. } = page;
        Connections { context, user_name, connections, revoked }
    }
}

/// 0.4.0's records but the connections page; no password page.
pub(in crate::plugin) struct Records;

impl PageRecords for Records {
    type Context = v0_4::Records;
    type Connections = Connections;
    const ADDED: AddedPages = AddedPages { connections: true, password: false, factors: false };
}
