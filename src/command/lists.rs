//! List commands.

use super::Args;
use crate::protocol::reply::Resp;
use crate::store::Db;

pub fn lpush(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn rpush(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn lpushx(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn rpushx(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn lpop(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn rpop(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn llen(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn lrange(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn lindex(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn lset(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn lrem(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn ltrim(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn linsert(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn lpos(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

