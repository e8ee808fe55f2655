//! The consent interface of 0.3.0: 0.4.0's without the password page, and without the
//! connections page's link to it.

use wasmtime::component::{ComponentType, Lower};

use crate::plugin::contract::v0_4::consent::{
    AddedPages, Connection, ConnectionsPage, Current, PageContext, PageRecords,
};

/// 0.3.0's connections page, the one record of its own: the records in it are 0.4.0's.
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
        let ConnectionsPage { context, user_name, connections, revoked, password_page: _ } = page;
        Connections { context, user_name, connections, revoked }
    }
}

/// 0.4.0's records but the connections page; no password page.
pub(in crate::plugin) struct Records;

impl PageRecords for Records {
    type Context = Current;
    type Connections = Connections;
    const ADDED: AddedPages = AddedPages { connections: true, password: false };
}
