//! Hash commands.

use super::Args;
use crate::protocol::reply::Resp;
use crate::store::Db;

pub fn hset(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hmset(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hsetnx(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hget(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hmget(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hgetall(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hdel(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hexists(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hlen(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hkeys(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hvals(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hincrby(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hincrbyfloat(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hstrlen(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

pub fn hscan(_db: &mut Db, _args: &Args, out: &mut Vec<u8>) {
    out.error("ERR not implemented yet");
}

