//! What a connection is, as far as commands go: the state connection-level
//! commands read and change ([`ClientState`]) and what the connection does
//! after a command ([`Flow`]). The server's connection loop owns one
//! `ClientState` per client and obeys the `Flow`.

use std::rc::Rc;

use super::transaction::{Queued, Watched};
use crate::coord::ClientInfo;

/// Per-connection state that commands may read or change.
pub struct ClientState {
    /// What CLIENT LIST shows (id, name, counters); also in this core's
    /// registry.
    pub info: Rc<ClientInfo>,
    /// Commands queued since MULTI.
    pub multi: Option<Box<Queued>>,
    pub watched: Vec<Watched>,
    /// Passed AUTH, or connected while no password was set
    /// (src/command/auth.rs).
    pub authenticated: bool,
    /// CLIENT REPLY: whether this connection's replies are sent
    /// (src/command/client.rs; the connection loop drops the others).
    pub reply: ReplyMode,
    /// Pub/Sub (issue 14): the connection's subscriptions and mailbox,
    /// from its first (P|S)SUBSCRIBE until RESET or disconnect
    /// (src/command/pubsub.rs).
    pub pubsub: Option<Box<crate::coord::pubsub::Subscriber>>,
    /// Cluster mode (issue 16): ASKING and READONLY (src/command/cluster.rs).
    pub cluster: crate::command::cluster::ClusterClient,
}

/// CLIENT REPLY's modes, as Redis' `CLIENT_REPLY_OFF` / `_SKIP_NEXT` /
/// `_SKIP` flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ReplyMode {
    /// Every reply is sent.
    #[default]
    On,
    /// No reply is sent until CLIENT REPLY ON.
    Off,
    /// Set by CLIENT REPLY SKIP: the next command's reply is dropped.
    SkipNext,
    /// The command being run is the one to skip.
    Skip,
}

/// What the connection does after a command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flow {
    Continue,
    /// Write what is pending, then close (QUIT, protocol errors).
    Close,
    /// Run EXEC: the connection replays the queued commands (kept out of
    /// `dispatch` so that EXEC's use of dispatch is not recursive).
    Exec,
    /// Close without writing anything more, not even the replies already
    /// made (cross-protocol scripting: `POST` / `Host:`).
    Abort,
}
