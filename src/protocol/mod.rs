//! RESP2: the request parser and the reply encoder.

pub mod parser;
pub mod reply;
