//! Set commands.

use super::Args;
use crate::protocol::reply::Resp;
use crate::shard::Shard;
use crate::store::Db;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Inter,
    Union,
    Diff,
}

pub async fn algebra_any(_shard: &Shard, _op: SetOp, _store: bool, _args: &Args<'_>, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}
pub fn sadd(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn srem(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn smembers(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn sismember(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn smismember(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn scard(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn spop(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn srandmember(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn sscan(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

