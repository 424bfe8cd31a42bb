//! `cjson`: JSON as lua-cjson 2.1.0 (Redis 7.0's copy) does it.
//!
//! Encoding: numbers with `%.14g` (precision settable 1..14), strings with
//! `"`, `\`, `/`, control bytes and DEL escaped and other bytes passed
//! through, `nil` and `cjson.null` as `null`, a table whose keys are all
//! whole numbers >= 1 as an array (holes as `null`) unless excessively
//! sparse (error by default, object with `encode_sparse_array(true)`), any
//! other table (including an empty one) as an object in `next` order with
//! number keys quoted. Decoding: lua-cjson's tokenizer (strtod numbers, so
//! hex, `inf`, `nan` and a leading `+` pass unless
//! `decode_invalid_numbers(false)`), `null` as `cjson.null`, UTF-16
//! escapes to UTF-8, and the same error texts with the same character
//! positions.
//!
//! Depth: both directions stop at `encode_max_depth`/`decode_max_depth`
//! (default 1000) and at the 8000-slot C stack limit the C module hits
//! when those are raised. Decoding is iterative; encoding recurses, so it
//! also stops at [`ENCODE_DEPTH_CAP`] (1000) levels. An encode result is
//! capped at [`MAX_OUTPUT`] bytes (Redis has no cap).

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::{
    LibError, LibResult, MAX_CSTACK, arg_fail, check_integer, check_string, double_to_int, fail,
    make_fn, make_fn_with, num, push_fmt_g, type_name,
};

/// Kora's cap on one `cjson.encode` result (Redis has none).
pub(crate) const MAX_OUTPUT: usize = 64 << 20;

/// Kora's cap on encode nesting whatever `encode_max_depth` says: the
/// encoder recurses (~0.8 KB of native stack per level) and must fit the
/// executor thread's stack. Redis's default limit is the same 1000, so
/// only scripts that raise `encode_max_depth` see a difference.
pub(crate) const ENCODE_DEPTH_CAP: i32 = 1000;

/// One cjson instance's settings (each `cjson.new()` has its own).
struct Cfg {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 off, 1 on, 2 null.
    encode_invalid_numbers: usize,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: i32,
    /// The kept encode buffer (`encode_keep_buffer`).
    buf: Vec<u8>,
}

impl Default for Cfg {
    fn default() -> Self {
        Cfg {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            keep_buffer: true,
            precision: 14,
            buf: Vec::new(),
        }
    }
}

/// Largest buffer kept between calls; a larger one is dropped after use.
const KEEP_LIMIT: usize = 1 << 20;

/// `json_arg_init`: at most `n` arguments.
fn arg_init(args: &[Value], n: usize) -> LibResult<()> {
    if args.len() > n {
        return arg_fail(n as i32 + 1, "found too many arguments");
    }
    Ok(())
}

fn arg_is_nil(args: &[Value], i: usize) -> bool {
    matches!(args.get(i - 1), None | Some(Value::Nil))
}

/// `luaL_checkoption` with no default.
fn check_option(lua: &Lua, args: &[Value], i: usize, options: &[&str]) -> LibResult<usize> {
    let s = check_string(lua, args, i)?;
    let b = s.as_bytes();
    let name = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    match options.iter().position(|o| o.as_bytes() == name) {
        Some(p) => Ok(p),
        None => arg_fail(
            i as i32,
            format!("invalid option '{}'", String::from_utf8_lossy(name)),
        ),
    }
}

/// `json_enum_option`: a boolean (when `bool_true` is set) or one of
/// `options`; returns the value to report.
fn enum_option(
    lua: &Lua,
    args: &[Value],
    i: usize,
    setting: &mut usize,
    options: Option<&[&str]>,
    bool_true: usize,
) -> LibResult<Value> {
    let (options, bool_true): (&[&str], usize) = match options {
        Some(o) => (o, bool_true),
        None => (&["off", "on"], 1),
    };
    if !arg_is_nil(args, i) {
        match args.get(i - 1) {
            Some(Value::Boolean(b)) if bool_true != 0 => *setting = usize::from(*b) * bool_true,
            _ => *setting = check_option(lua, args, i, options)?,
        }
    }
    if bool_true != 0 && (*setting == 0 || *setting == bool_true) {
        Ok(Value::Boolean(*setting != 0))
    } else {
        Ok(Value::String(lua.create_string(options[*setting])?))
    }
}

/// `json_integer_option`: reports range errors against argument 1 (as
/// lua-cjson does, whatever the argument).
fn integer_option(
    args: &[Value],
    i: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> LibResult<Value> {
    if !arg_is_nil(args, i) {
        let value = check_integer(args, i)? as i32;
        if !(min <= value && value <= max) {
            return arg_fail(1, format!("expected integer between {min} and {max}"));
        }
        *setting = value;
    }
    Ok(num(f64::from(*setting)))
}

fn one(v: Value) -> LibResult<MultiValue> {
    Ok(MultiValue::from_vec(vec![v]))
}

// ===== Encoding =====

struct Encoder<'a> {
    cfg: &'a Cfg,
    out: Vec<u8>,
    fmt: String,
}

fn exception(v: &Value, reason: &str) -> LibError {
    LibError::Where(format!("Cannot serialise {}: {reason}", type_name(v)))
}

impl Encoder<'_> {
    fn string(&mut self, s: &[u8]) {
        let out = &mut self.out;
        out.reserve(s.len() + 2);
        out.push(b'"');
        for &c in s {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'/' => out.extend_from_slice(b"\\/"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\r' => out.extend_from_slice(b"\\r"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0..=0x1f | 0x7f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(c >> 4)]);
                    out.push(HEX[usize::from(c & 15)]);
                }
                _ => out.push(c),
            }
        }
        out.push(b'"');
    }

    fn number(&mut self, v: &Value, n: f64) -> LibResult<()> {
        if n.is_infinite() || n.is_nan() {
            match self.cfg.encode_invalid_numbers {
                0 => return Err(exception(v, "must not be NaN or Inf")),
                1 if n.is_nan() => {
                    self.out.extend_from_slice(b"nan");
                    return Ok(());
                }
                1 => {}
                _ => {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        self.fmt.clear();
        push_fmt_g(&mut self.fmt, n, self.cfg.precision as usize);
        self.out.extend_from_slice(self.fmt.as_bytes());
        Ok(())
    }

    /// Encodes `v`; `depth` tables enclose it and `used` C stack slots
    /// would be in use in the C module.
    fn value(&mut self, v: &Value, depth: i32, used: i64) -> LibResult<()> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(i) => self.number(v, *i as f64)?,
            Value::Number(n) => self.number(v, *n)?,
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            Value::Table(t) => self.table(t, depth + 1, used)?,
            other => return Err(exception(other, "type not supported")),
        }
        Ok(())
    }

    /// `lua_array_length`: the array size, or -1 for an object.
    fn array_length(&self, t: &Table) -> LibResult<i32> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        for pair in t.pairs::<Value, Value>() {
            let (k, _) = pair?;
            let k = match k {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => return Ok(-1),
            };
            if k == 0.0 || k.floor() != k || k < 1.0 {
                return Ok(-1);
            }
            // C assigns the double to an int (x86-64: INT_MIN when too big).
            if k > f64::from(max) {
                max = double_to_int(k);
            }
            items = items.wrapping_add(1);
        }
        let cfg = self.cfg;
        if cfg.sparse_ratio > 0
            && max > items.wrapping_mul(cfg.sparse_ratio)
            && max > cfg.sparse_safe
        {
            if !cfg.sparse_convert {
                return Err(exception(
                    &Value::Table(t.clone()),
                    "excessively sparse array",
                ));
            }
            return Ok(-1);
        }
        Ok(max)
    }

    #[inline(never)]
    fn table(&mut self, t: &Table, depth: i32, used: i64) -> LibResult<()> {
        if !(depth <= self.cfg.encode_max_depth
            && depth <= ENCODE_DEPTH_CAP
            && used + 3 <= MAX_CSTACK)
        {
            return fail(format!("Cannot serialise, excessive nesting ({depth})"));
        }
        if self.out.len() > MAX_OUTPUT {
            return fail("Cannot serialise, output exceeds 64 MB");
        }
        let len = self.array_length(t)?;
        if len > 0 {
            self.out.push(b'[');
            for i in 1..=len {
                if i > 1 {
                    self.out.push(b',');
                    if self.out.len() > MAX_OUTPUT {
                        return fail("Cannot serialise, output exceeds 64 MB");
                    }
                }
                let v: Value = t.raw_get(i)?;
                self.value(&v, depth, used + 1)?;
            }
            self.out.push(b']');
        } else {
            self.out.push(b'{');
            let mut comma = false;
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                if comma {
                    self.out.push(b',');
                } else {
                    comma = true;
                }
                match &k {
                    Value::Integer(_) | Value::Number(_) => {
                        let n = match k {
                            Value::Integer(i) => i as f64,
                            Value::Number(n) => n,
                            _ => 0.0,
                        };
                        self.out.push(b'"');
                        self.number(&k, n)?;
                        self.out.extend_from_slice(b"\":");
                    }
                    Value::String(s) => {
                        self.string(&s.as_bytes());
                        self.out.push(b':');
                    }
                    _ => return Err(exception(&k, "table key must be a number or string")),
                }
                self.value(&v, depth, used + 2)?;
            }
            self.out.push(b'}');
        }
        Ok(())
    }
}

fn json_encode(lua: &Lua, cfg: &mut Cfg, args: &[Value]) -> LibResult<MultiValue> {
    if args.len() != 1 {
        return arg_fail(1, "expected 1 argument");
    }
    let buf = if cfg.keep_buffer {
        std::mem::take(&mut cfg.buf)
    } else {
        Vec::new()
    };
    let mut enc = Encoder {
        cfg,
        out: buf,
        fmt: String::new(),
    };
    enc.out.clear();
    let r = enc.value(&args[0], 0, 1);
    let out = enc.out;
    let s = match r {
        Ok(()) => Some(lua.create_string(&out)),
        Err(e) => {
            if cfg.keep_buffer && out.capacity() <= KEEP_LIMIT {
                cfg.buf = out;
            }
            return Err(e);
        }
    };
    if cfg.keep_buffer && out.capacity() <= KEEP_LIMIT {
        cfg.buf = out;
    }
    match s {
        Some(s) => one(Value::String(s?)),
        None => unreachable!("handled above"),
    }
}

// ===== Decoding =====

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Number(_) => "T_NUMBER",
            Tok::Boolean(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    /// The last string token's bytes.
    tmp: Vec<u8>,
    decode_invalid_numbers: bool,
}

fn hexval(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'a'..=b'f' => Some(u32::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(c - b'A' + 10)),
        _ => None,
    }
}

impl Parser<'_> {
    /// The byte at `i`, NUL past the end (Lua strings are NUL-terminated).
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn hex4(&self, i: usize) -> Option<u32> {
        let mut v = 0;
        for k in 0..4 {
            v = (v << 4) | hexval(self.at(i + k))?;
        }
        Some(v)
    }

    /// `json_append_unicode_escape` at `\u`: appends UTF-8, advances.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let t = &mut self.tmp;
        if cp <= 0x7F {
            t.push(cp as u8);
        } else if cp <= 0x7FF {
            t.extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80]);
        } else if cp <= 0xFFFF {
            t.extend_from_slice(&[
                (cp >> 12) as u8 | 0xE0,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        } else {
            t.extend_from_slice(&[
                (cp >> 18) as u8 | 0xF0,
                ((cp >> 12) & 0x3F) as u8 | 0x80,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        }
        self.pos += len;
        true
    }

    /// A string token (at `"`); on error the index is where it stopped.
    fn string(&mut self) -> (Tok, usize) {
        self.pos += 1;
        self.tmp.clear();
        loop {
            let ch = self.at(self.pos);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return (Tok::Error("unexpected end of string"), self.pos);
            }
            let mut out = ch;
            if ch == b'\\' {
                out = match self.at(self.pos + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 0x0c,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape() {
                            continue;
                        }
                        return (Tok::Error("invalid unicode escape code"), self.pos);
                    }
                    _ => return (Tok::Error("invalid escape code"), self.pos),
                };
                self.pos += 1;
            }
            self.tmp.push(out);
            self.pos += 1;
        }
        self.pos += 1;
        (Tok::Str, 0)
    }

    /// `json_is_invalid_number` at the current position.
    fn is_invalid_number(&self) -> bool {
        let mut i = self.pos;
        if self.at(i) == b'+' {
            return true;
        }
        if self.at(i) == b'-' {
            i += 1;
        }
        let c = self.at(i);
        if c == b'0' {
            let c2 = self.at(i + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        } else if c <= b'9' {
            return false;
        }
        let word: Vec<u8> = (0..3)
            .map(|k| self.at(i + k).to_ascii_lowercase())
            .collect();
        word == b"inf" || word == b"nan"
    }

    fn number(&mut self) -> Tok {
        match super::strtod(&self.data[self.pos.min(self.data.len())..]) {
            Some((v, n)) if n > 0 => {
                self.pos += n;
                Tok::Number(v)
            }
            _ => Tok::Error("invalid number"),
        }
    }

    /// `json_next_token`: the token and the index it starts at.
    fn next(&mut self) -> (Tok, usize) {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let ch = self.at(self.pos);
        let single = match ch {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, start);
        }
        if ch == 0 {
            return (Tok::End, start);
        }
        let rest = &self.data[self.pos..];
        let tok = if ch == b'"' {
            let (t, at) = self.string();
            return (t, if let Tok::Error(_) = t { at } else { start });
        } else if ch == b'-' || ch.is_ascii_digit() {
            if !self.decode_invalid_numbers && self.is_invalid_number() {
                Tok::Error("invalid number")
            } else {
                self.number()
            }
        } else if rest.starts_with(b"true") {
            self.pos += 4;
            Tok::Boolean(true)
        } else if rest.starts_with(b"false") {
            self.pos += 5;
            Tok::Boolean(false)
        } else if rest.starts_with(b"null") {
            self.pos += 4;
            Tok::Null
        } else if matches!(ch, b'i' | b'I' | b'n' | b'N' | b'+')
            && self.decode_invalid_numbers
            && self.is_invalid_number()
        {
            self.number()
        } else {
            Tok::Error("invalid token")
        };
        (tok, start)
    }
}

fn parse_error(expected: &str, tok: (Tok, usize)) -> LibError {
    LibError::Where(format!(
        "Expected {expected} but found {} at character {}",
        tok.0.name(),
        tok.1 + 1
    ))
}

/// Containers nested at most this deep stay in Rust while open; deeper
/// ones go to Lua-side work tables (mlua holds Rust-side Lua references
/// in a bounded auxiliary stack, and nesting may reach ~8000).
const INLINE_DEPTH: usize = 128;

/// An open array or object.
struct Open {
    is_obj: bool,
    /// Next array index.
    index: i64,
    /// The table, when kept inline.
    t: Option<Table>,
    /// The pending object key, when kept inline.
    key: Option<mlua::String>,
}

/// Lua-side storage for containers deeper than [`INLINE_DEPTH`], created
/// on first use.
struct Spill<'l> {
    lua: &'l Lua,
    tables: Option<Table>,
    keys: Option<Table>,
}

impl Spill<'_> {
    fn tables(&mut self) -> mlua::Result<&Table> {
        if self.tables.is_none() {
            self.tables = Some(self.lua.create_table()?);
        }
        Ok(self.tables.as_ref().expect("created"))
    }
    fn keys(&mut self) -> mlua::Result<&Table> {
        if self.keys.is_none() {
            self.keys = Some(self.lua.create_table()?);
        }
        Ok(self.keys.as_ref().expect("created"))
    }
}

/// Records the key string just read for the object at `depth`.
fn set_key(
    lua: &Lua,
    spill: &mut Spill<'_>,
    top: &mut Open,
    depth: usize,
    key: &[u8],
) -> mlua::Result<()> {
    let k = lua.create_string(key)?;
    if depth <= INLINE_DEPTH {
        top.key = Some(k);
        Ok(())
    } else {
        spill.keys()?.raw_set(depth, k)
    }
}

fn json_decode(lua: &Lua, cfg: &mut Cfg, args: &[Value]) -> LibResult<MultiValue> {
    if args.len() != 1 {
        return arg_fail(1, "expected 1 argument");
    }
    let s = check_string(lua, args, 1)?;
    let bytes = s.as_bytes();
    if bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0) {
        return fail("JSON parser does not support UTF-16 or UTF-32");
    }
    let mut p = Parser {
        data: &bytes,
        pos: 0,
        tmp: Vec::new(),
        decode_invalid_numbers: cfg.decode_invalid_numbers,
    };
    let max_depth = cfg.decode_max_depth;
    let mut spill = Spill {
        lua,
        tables: None,
        keys: None,
    };
    let mut stack: Vec<Open> = Vec::new();
    // C stack slots the C module would use: the argument, then one per
    // open array (table) and two per open object (table, key).
    let mut used: i64 = 1;
    let mut tok = p.next();
    loop {
        // Parse one value starting at `tok`.
        let mut v = match tok.0 {
            Tok::Str => Value::String(lua.create_string(&p.tmp)?),
            Tok::Number(n) => num(n),
            Tok::Boolean(b) => Value::Boolean(b),
            Tok::Null => Value::LightUserData(LightUserData(std::ptr::null_mut())),
            Tok::ObjBegin | Tok::ArrBegin => {
                let is_obj = tok.0 == Tok::ObjBegin;
                let depth = stack.len() + 1;
                let slots = if is_obj { 3 } else { 2 };
                if !(depth as i64 <= i64::from(max_depth) && used + slots <= MAX_CSTACK) {
                    return fail(format!(
                        "Found too many nested data structures ({depth}) at character {}",
                        p.pos
                    ));
                }
                let t = lua.create_table()?;
                tok = p.next();
                let empty = if is_obj {
                    tok.0 == Tok::ObjEnd
                } else {
                    tok.0 == Tok::ArrEnd
                };
                if empty {
                    Value::Table(t)
                } else {
                    let t = if depth <= INLINE_DEPTH {
                        Some(t)
                    } else {
                        spill.tables()?.raw_set(depth, t)?;
                        None
                    };
                    let mut open = Open {
                        is_obj,
                        index: 1,
                        t,
                        key: None,
                    };
                    if is_obj {
                        used += 2;
                        if tok.0 != Tok::Str {
                            return Err(parse_error("object key string", tok));
                        }
                        set_key(lua, &mut spill, &mut open, depth, &p.tmp)?;
                        let colon = p.next();
                        if colon.0 != Tok::Colon {
                            return Err(parse_error("colon", colon));
                        }
                        tok = p.next();
                    } else {
                        used += 1;
                    }
                    stack.push(open);
                    continue;
                }
            }
            _ => return Err(parse_error("value", tok)),
        };
        // Store the value in its container; close the containers it ends.
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else {
                let end = p.next();
                if end.0 != Tok::End {
                    return Err(parse_error("the end", end));
                }
                return one(v);
            };
            let spilled: Table;
            let t: &Table = match &top.t {
                Some(t) => t,
                None => {
                    spilled = spill.tables()?.raw_get(depth)?;
                    &spilled
                }
            };
            if top.is_obj {
                match top.key.take() {
                    Some(k) => t.raw_set(k, v)?,
                    None => {
                        let k: Value = spill.keys()?.raw_get(depth)?;
                        t.raw_set(k, v)?;
                    }
                }
            } else {
                t.raw_set(top.index, v)?;
                top.index += 1;
            }
            let is_obj = top.is_obj;
            tok = p.next();
            let close = if is_obj { Tok::ObjEnd } else { Tok::ArrEnd };
            if tok.0 == close {
                let done = stack.pop().expect("non-empty");
                used -= if is_obj { 2 } else { 1 };
                v = match done.t {
                    Some(t) => Value::Table(t),
                    None => {
                        let tables = spill.tables()?;
                        let t: Table = tables.raw_get(depth)?;
                        tables.raw_set(depth, Value::Nil)?;
                        Value::Table(t)
                    }
                };
                continue;
            }
            if tok.0 != Tok::Comma {
                return Err(parse_error(
                    if is_obj {
                        "comma or object end"
                    } else {
                        "comma or array end"
                    },
                    tok,
                ));
            }
            tok = p.next();
            if is_obj {
                if tok.0 != Tok::Str {
                    return Err(parse_error("object key string", tok));
                }
                let top = stack.last_mut().expect("non-empty");
                set_key(lua, &mut spill, top, depth, &p.tmp)?;
                let colon = p.next();
                if colon.0 != Tok::Colon {
                    return Err(parse_error("colon", colon));
                }
                tok = p.next();
            }
            break;
        }
    }
}

// ===== Module =====

fn config_fns(lua: &Lua, t: &Table, cfg: &Rc<RefCell<Cfg>>) -> mlua::Result<()> {
    t.raw_set("encode", make_fn_with(lua, cfg, json_encode)?)?;
    t.raw_set("decode", make_fn_with(lua, cfg, json_decode)?)?;
    t.raw_set(
        "encode_sparse_array",
        make_fn_with(lua, cfg, |lua, c, a| {
            arg_init(a, 3)?;
            let mut convert = usize::from(c.sparse_convert);
            let r1 = enum_option(lua, a, 1, &mut convert, None, 1)?;
            c.sparse_convert = convert != 0;
            let r2 = integer_option(a, 2, &mut c.sparse_ratio, 0, i32::MAX)?;
            let r3 = integer_option(a, 3, &mut c.sparse_safe, 0, i32::MAX)?;
            Ok(MultiValue::from_vec(vec![r1, r2, r3]))
        })?,
    )?;
    t.raw_set(
        "encode_max_depth",
        make_fn_with(lua, cfg, |_, c, a| {
            arg_init(a, 1)?;
            one(integer_option(a, 1, &mut c.encode_max_depth, 1, i32::MAX)?)
        })?,
    )?;
    t.raw_set(
        "decode_max_depth",
        make_fn_with(lua, cfg, |_, c, a| {
            arg_init(a, 1)?;
            one(integer_option(a, 1, &mut c.decode_max_depth, 1, i32::MAX)?)
        })?,
    )?;
    t.raw_set(
        "encode_number_precision",
        make_fn_with(lua, cfg, |_, c, a| {
            arg_init(a, 1)?;
            one(integer_option(a, 1, &mut c.precision, 1, 14)?)
        })?,
    )?;
    t.raw_set(
        "encode_keep_buffer",
        make_fn_with(lua, cfg, |lua, c, a| {
            arg_init(a, 1)?;
            let mut keep = usize::from(c.keep_buffer);
            let r = enum_option(lua, a, 1, &mut keep, None, 1)?;
            c.keep_buffer = keep != 0;
            if !c.keep_buffer {
                c.buf = Vec::new();
            }
            one(r)
        })?,
    )?;
    t.raw_set(
        "encode_invalid_numbers",
        make_fn_with(lua, cfg, |lua, c, a| {
            arg_init(a, 1)?;
            one(enum_option(
                lua,
                a,
                1,
                &mut c.encode_invalid_numbers,
                Some(&["off", "on", "null"]),
                1,
            )?)
        })?,
    )?;
    t.raw_set(
        "decode_invalid_numbers",
        make_fn_with(lua, cfg, |lua, c, a| {
            arg_init(a, 1)?;
            let mut v = usize::from(c.decode_invalid_numbers);
            let r = enum_option(lua, a, 1, &mut v, None, 1)?;
            c.decode_invalid_numbers = v != 0;
            one(r)
        })?,
    )?;
    Ok(())
}

/// Builds a `cjson` table with its own settings (`cjson.new()` makes more).
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let cfg = Rc::new(RefCell::new(Cfg::default()));
    config_fns(lua, &t, &cfg)?;
    t.raw_set(
        "new",
        make_fn(lua, |lua, _| one(Value::Table(module(lua)?)))?,
    )?;
    t.raw_set("null", LightUserData(std::ptr::null_mut()))?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, eval, eval_err, eval_in, render, vm};

    /// Snippets and redis-server 7.0.15's replies (EVAL "<snippet>" 0 on a
    /// fresh server, recorded 2026-11-30), rendered as Lua values.
    #[test]
    fn lualib_cjson_encode_matches_redis() {
        let cases: &[(&str, &str)] = &[
            ("return cjson.encode({1,2,{a=1}})", r#""[1,2,{\"a\":1}]""#),
            (
                "return cjson.encode('a/b\"\\\\\\1\\127\\128')",
                r#""\"a\\/b\\\"\\\\\\u0001\\u007f\x80\"""#,
            ),
            ("return cjson.encode(-0.0)", r#""-0""#),
            (
                "return cjson.encode({1e300, 0.1, 1/3, 123456789012345678, 1e15,1e16, -1.5e-7, 100})",
                r#""[1e+300,0.1,0.33333333333333,1.2345678901235e+17,1e+15,1e+16,-1.5e-07,100]""#,
            ),
            (
                "return cjson.encode({[1]=1,[2]=2,[4]=4})",
                r#""[1,2,null,4]""#,
            ),
            (
                "return cjson.encode({[1]=1,[10]=2})",
                r#""[1,null,null,null,null,null,null,null,null,2]""#,
            ),
            (
                "return cjson.encode({[1.5]=1, [-1]=2})",
                r#""{\"1.5\":1,\"-1\":2}""#,
            ),
            (
                "return cjson.encode({[1e10]=1})",
                r#""{\"10000000000\":1}""#,
            ),
            (
                "return cjson.encode({[1e15]=1, [2^53]=2})",
                r#""{\"1e+15\":1,\"9.007199254741e+15\":2}""#,
            ),
            (
                "return cjson.encode(12345678901234567)",
                r#""1.2345678901235e+16""#,
            ),
            (
                "cjson.encode_sparse_array(true) return cjson.encode({[1]=1,[20]=2})",
                r#""{\"1\":1,\"20\":2}""#,
            ),
            (
                "local a,b,c = cjson.encode_sparse_array(true, 0, 3) return {tostring(a),b,c,cjson.encode({[1]=1,[5]=2})}",
                r#"{"true",0,3,"[1,null,null,null,2]"}"#,
            ),
            (
                "return {cjson.encode({}), cjson.encode({{}})}",
                r#"{"{}","[{}]"}"#,
            ),
            (
                "return cjson.encode({cjson.null, true, false, 'x'})",
                r#""[null,true,false,\"x\"]""#,
            ),
            (
                "return cjson.encode({a={b={1,2,3}}, c='d', [1]=5})",
                r#""{\"a\":{\"b\":[1,2,3]},\"c\":\"d\",\"1\":5}""#,
            ),
            (
                "return {tostring(cjson.encode_invalid_numbers(true)), cjson.encode({1/0, -1/0, 0/0})}",
                r#"{"true","[inf,-inf,nan]"}"#,
            ),
            (
                "return {tostring(cjson.encode_invalid_numbers('null')), cjson.encode({1/0, -1/0, 0/0})}",
                r#"{"null","[null,null,null]"}"#,
            ),
            (
                "cjson.encode_number_precision(3) return cjson.encode({1/3, 12345, 0.5, [2.5]=1})",
                r#""{\"1\":0.333,\"2\":1.23e+04,\"3\":0.5,\"2.5\":1}""#,
            ),
        ];
        for (code, want) in cases {
            assert_eq!(eval(code), *want, "{code}");
        }
    }

    #[test]
    fn lualib_cjson_settings_match_redis() {
        let cases: &[(&str, &str)] = &[
            (
                "return {cjson.encode_max_depth(), cjson.decode_max_depth(), cjson.encode_number_precision(), \
                 tostring(cjson.encode_keep_buffer()), tostring(cjson.encode_invalid_numbers()), tostring(cjson.decode_invalid_numbers())}",
                r#"{1000,1000,14,"true","false","true"}"#,
            ),
            (
                "local a,b,c = cjson.encode_sparse_array() return {tostring(a),b,c}",
                r#"{"false",2,10}"#,
            ),
            ("return {cjson.encode_sparse_array('on', 1)}", "{true,1,10}"),
            ("return cjson.encode_max_depth('5')", "5"),
            (
                "local c = cjson.new() c.encode_max_depth(1) cjson.encode_max_depth(5) return {cjson.encode_max_depth(), c.encode_max_depth(), c._NAME}",
                r#"{5,1,"cjson"}"#,
            ),
            (
                "return tostring(cjson.encode_keep_buffer('off'))",
                r#""false""#,
            ),
            (
                "return {cjson.decode_invalid_numbers('on'), tostring(cjson.decode_invalid_numbers('off'))}",
                r#"{true,"false"}"#,
            ),
            (
                "return {cjson._NAME, cjson._VERSION, type(cjson.null)}",
                r#"{"cjson","2.1.0","userdata"}"#,
            ),
        ];
        for (code, want) in cases {
            assert_eq!(eval(code), *want, "{code}");
        }
    }

    #[test]
    fn lualib_cjson_decode_matches_redis() {
        let cases: &[(&str, &str)] = &[
            ("return cjson.decode('+1')", "1"),
            ("return cjson.decode('0x1F')", "31"),
            ("return tostring(cjson.decode('-Infinity'))", r#""-inf""#),
            ("return tostring(cjson.decode('nan'))", r#""nan""#),
            ("return cjson.decode(12)", "12"),
            (
                "return cjson.decode('[1,\"a\",{\"b\":[true,false,null]}]')",
                r#"{1,"a",{["b"]={true,false,null}}}"#,
            ),
            (
                "return cjson.decode('[1]' .. string.char(0) .. 'garbage')",
                "{1}",
            ),
            (
                "return cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\\\\u0000x\"')",
                r#""\xc3\xa9\xf0\x9f\x98\x80\x00x""#,
            ),
            ("return cjson.decode(' {\"a\" : 1 , \"a\" : 2} ').a", "2"),
            ("return cjson.decode('[1.5e3, -0, 1E-2]')", "{1500,-0,0.01}"),
        ];
        for (code, want) in cases {
            assert_eq!(eval(code), *want, "{code}");
        }
    }

    #[test]
    fn lualib_cjson_errors_match_redis() {
        let cases: &[(&str, &str)] = &[
            (
                "return cjson.encode()",
                "user_script:1: bad argument #1 to 'encode' (expected 1 argument)",
            ),
            (
                "return cjson.decode()",
                "user_script:1: bad argument #1 to 'decode' (expected 1 argument)",
            ),
            (
                "return cjson.encode(1,2)",
                "user_script:1: bad argument #1 to 'encode' (expected 1 argument)",
            ),
            (
                "return cjson.encode(function() end)",
                "user_script:1: Cannot serialise function: type not supported",
            ),
            (
                "return cjson.encode(cjson.new)",
                "user_script:1: Cannot serialise function: type not supported",
            ),
            (
                "return cjson.decode('[1,]')",
                "user_script:1: Expected value but found T_ARR_END at character 4",
            ),
            (
                "return cjson.encode(0/0)",
                "user_script:1: Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "return cjson.encode({[{}]=1})",
                "user_script:1: Cannot serialise table: table key must be a number or string",
            ),
            (
                "return cjson.encode({[1]=1,[20]=2})",
                "user_script:1: Cannot serialise table: excessively sparse array",
            ),
            (
                "return cjson.decode('[1,2')",
                "user_script:1: Expected comma or array end but found T_END at character 5",
            ),
            (
                "return cjson.decode('{\"a\" 1}')",
                "user_script:1: Expected colon but found T_NUMBER at character 6",
            ),
            (
                "return cjson.decode('{1:1}')",
                "user_script:1: Expected object key string but found T_NUMBER at character 2",
            ),
            (
                "return cjson.decode('{\"a\":1,}')",
                "user_script:1: Expected object key string but found T_OBJ_END at character 8",
            ),
            (
                "return cjson.decode('[\"abc')",
                "user_script:1: Expected value but found unexpected end of string at character 6",
            ),
            (
                "return cjson.decode('[\"a\\\\qb\"]')",
                "user_script:1: Expected value but found invalid escape code at character 4",
            ),
            (
                "return cjson.decode('[\"a\\\\u12\"]')",
                "user_script:1: Expected value but found invalid unicode escape code at character 4",
            ),
            (
                "return cjson.decode('[1] x')",
                "user_script:1: Expected the end but found invalid token at character 5",
            ),
            (
                "return cjson.decode('')",
                "user_script:1: Expected value but found T_END at character 1",
            ),
            (
                "return cjson.decode('  ')",
                "user_script:1: Expected value but found T_END at character 3",
            ),
            (
                "return cjson.decode('-')",
                "user_script:1: Expected value but found invalid number at character 1",
            ),
            (
                "return cjson.decode('tru')",
                "user_script:1: Expected value but found invalid token at character 1",
            ),
            (
                "return cjson.decode('1.5e')",
                "user_script:1: Expected the end but found invalid token at character 4",
            ),
            (
                "return cjson.decode('a\\0')",
                "user_script:1: JSON parser does not support UTF-16 or UTF-32",
            ),
            (
                "return cjson.decode(string.char(0)..'x')",
                "user_script:1: JSON parser does not support UTF-16 or UTF-32",
            ),
            (
                "return cjson.decode({})",
                "user_script:1: bad argument #1 to 'decode' (string expected, got table)",
            ),
            (
                "return cjson.encode_invalid_numbers('x')",
                "user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option 'x')",
            ),
            (
                "return cjson.encode_invalid_numbers(1,2)",
                "user_script:1: bad argument #2 to 'encode_invalid_numbers' (found too many arguments)",
            ),
            (
                "return cjson.encode_max_depth(0)",
                "user_script:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)",
            ),
            (
                "return cjson.encode_max_depth('a')",
                "user_script:1: bad argument #1 to 'encode_max_depth' (number expected, got string)",
            ),
            (
                "return cjson.encode_number_precision(15)",
                "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)",
            ),
            (
                "return {cjson.encode_sparse_array(nil, -1)}",
                "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)",
            ),
            (
                "return {cjson.encode_sparse_array(nil, 1, -1)}",
                "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)",
            ),
            (
                "return {cjson.encode_sparse_array(1)}",
                "user_script:1: bad argument #1 to 'encode_sparse_array' (invalid option '1')",
            ),
            (
                "return tostring(cjson.encode_keep_buffer(1))",
                "user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option '1')",
            ),
            (
                "cjson.decode_invalid_numbers(false) return cjson.decode('[0x10]')",
                "user_script:1: Expected value but found invalid number at character 2",
            ),
            (
                "cjson.decode_invalid_numbers(false) return cjson.decode('[NaN]')",
                "user_script:1: Expected value but found invalid token at character 2",
            ),
            (
                "cjson.decode_invalid_numbers(false) return cjson.decode('[01]')",
                "user_script:1: Expected value but found invalid number at character 2",
            ),
            (
                "cjson.decode_invalid_numbers(false) return cjson.decode('[+1]')",
                "user_script:1: Expected value but found invalid token at character 2",
            ),
            (
                "cjson.decode_invalid_numbers(false) return cjson.decode('[-0x1]')",
                "user_script:1: Expected value but found invalid number at character 2",
            ),
        ];
        for (code, want) in cases {
            assert_eq!(eval_err(code), *want, "{code}");
        }
        // Through pcall: a plain string error without position, as in Redis.
        assert_eq!(
            eval("local ok, e = pcall(cjson.encode, function() end) return {type(e), e}"),
            r#"{"string","Cannot serialise function: type not supported"}"#
        );
    }

    #[test]
    fn lualib_cjson_depth_limits_match_redis() {
        let cases: &[(&str, &str)] = &[
            (
                "return cjson.decode(string.rep('[',1001)..string.rep(']',1001))",
                "user_script:1: Found too many nested data structures (1001) at character 1001",
            ),
            (
                "return cjson.decode(string.rep('{\"a\":',1001)..string.rep('}',1001))",
                "user_script:1: Found too many nested data structures (1001) at character 5001",
            ),
            (
                "local t={} local c=t for i=1,1001 do c[1]={} c=c[1] end return cjson.encode(t)",
                "user_script:1: Cannot serialise, excessive nesting (1001)",
            ),
            (
                "cjson.decode_max_depth(100000) return #cjson.decode(string.rep('[',9000)..string.rep(']',9000))",
                "user_script:1: Found too many nested data structures (7999) at character 7999",
            ),
            (
                "cjson.decode_max_depth(100000) return #cjson.decode(string.rep('{\"a\":',9000)..string.rep('}',9000))",
                "user_script:1: Found too many nested data structures (4000) at character 19996",
            ),
            // Redis says (7998) and (4000) here: Kora's encoder stops at
            // 1000 levels whatever encode_max_depth says.
            (
                "cjson.encode_max_depth(100000) local t={} local c=t for i=1,10000 do c[1]={} c=c[1] end return cjson.encode(t)",
                "user_script:1: Cannot serialise, excessive nesting (1001)",
            ),
            // A cycle stops at the depth limit.
            (
                "local t = {} t[1] = t return cjson.encode(t)",
                "user_script:1: Cannot serialise, excessive nesting (1001)",
            ),
        ];
        for (code, want) in cases {
            assert_eq!(eval_err(code), *want, "{code}");
        }
        // The deepest nestings Redis decodes decode here too; encoding
        // 1000 levels fits a 1 MB stack (half the executors' default).
        assert_eq!(
            eval(
                "cjson.decode_max_depth(100000) local s = string.rep('[',7998)..string.rep(']',7998) return type(cjson.decode(s))"
            ),
            "\"table\""
        );
        assert_eq!(
            eval(
                "cjson.decode_max_depth(100000) local s = string.rep('{\"a\":',3999)..'1'..string.rep('}',3999) return type(cjson.decode(s))"
            ),
            "\"table\""
        );
        // Containers past the inline depth (128) are kept Lua-side while open.
        assert_eq!(
            eval(
                "local s = string.rep('[{\"k\":', 300)..'7'..string.rep('}]', 300) local t = cjson.decode(s) \
                 for i = 1, 300 do t = t[1].k end return t"
            ),
            "7"
        );
        let h = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                eval("local s = string.rep('[',1000)..'1'..string.rep(']',1000) return cjson.encode(cjson.decode(s)) == s")
                    + &eval("local s = string.rep('{\"a\":',1000)..'1'..string.rep('}',1000) return cjson.encode(cjson.decode(s)) == s")
            })
            .expect("spawn");
        assert_eq!(h.join().expect("no stack overflow"), "truetrue");
    }

    /// Random values whose numbers survive `%.14g` exactly.
    fn random_json_value(rng: &mut Rng, depth: u32) -> String {
        match rng.below(if depth > 3 { 5 } else { 7 }) {
            0 => format!(
                "{}",
                (rng.below(2_000_000_000_000) as i64) - 1_000_000_000_000
            ),
            1 => format!("{}", (rng.below(4_000_000_000) as f64 - 2e9) / 64.0),
            2 => {
                let b = rng.bytes(30);
                format!(
                    "'{}'",
                    b.iter().map(|c| format!("\\{c}")).collect::<String>()
                )
            }
            3 => (if rng.below(2) == 0 {
                "true"
            } else {
                "cjson.null"
            })
            .into(),
            4 => format!("{}", rng.below(300) as i64 - 150),
            5 => {
                let n = rng.below(12) + 1;
                let items: Vec<String> =
                    (0..n).map(|_| random_json_value(rng, depth + 1)).collect();
                format!("{{{}}}", items.join(","))
            }
            _ => {
                let n = rng.below(8);
                let items: Vec<String> = (0..n)
                    .map(|i| format!("['k{i}\\0\\1/\"']={}", random_json_value(rng, depth + 1)))
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    #[test]
    fn lualib_cjson_round_trips_random_values() {
        let lua = vm();
        let mut rng = Rng::new(1407);
        for _ in 0..300 {
            let v = random_json_value(&mut rng, 0);
            let code = format!("local v = {v} return v, cjson.decode(cjson.encode(v))");
            let out: mlua::MultiValue = lua
                .load(&code)
                .call(())
                .unwrap_or_else(|e| panic!("{e}: {v}"));
            assert_eq!(render(&out[0]), render(&out[1]), "{v}");
        }
        assert_eq!(
            eval_in(
                &lua,
                "return cjson.encode(cjson.decode('[1,-2.5,\"x\\\\u0000y\",{\"a\":[true,false]},{}]'))"
            ),
            r#""[1,-2.5,\"x\\u0000y\",{\"a\":[true,false]},{}]""#
        );
    }

    #[test]
    fn lualib_cjson_random_bytes_never_panic() {
        let lua = vm();
        let f = lua
            .load("return function(s) return pcall(cjson.decode, s) end")
            .eval::<mlua::Function>()
            .unwrap();
        let mut rng = Rng::new(31337);
        let alphabet = b"[]{}:,\"\\u0123456789abcdefABCDEF-+.eExtrnulfsaINinfy \t\n";
        for i in 0..4000 {
            let n = rng.below(40) as usize;
            let b: Vec<u8> = if i % 2 == 0 {
                (0..n)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect()
            } else {
                rng.bytes(40)
            };
            let s = lua.create_string(&b).unwrap();
            let _: mlua::MultiValue = f.call(s).unwrap();
        }
    }

    #[test]
    fn lualib_cjson_output_is_capped() {
        // ratio 0 allows any sparseness; Redis would build a 10 GB string.
        assert_eq!(
            eval_err("cjson.encode_sparse_array(false, 0) return cjson.encode({[2000000000] = 1})"),
            "user_script:1: Cannot serialise, output exceeds 64 MB"
        );
    }
}
