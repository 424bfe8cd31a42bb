//! `cmsgpack`: MessagePack as lua-cmsgpack 0.4.0 does it in Redis 7.0.
//!
//! Packing: numbers that are whole and fit an int64 become the smallest
//! MessagePack integer, other numbers a float32 when that is exact, else a
//! float64; strings use fixstr/str8/str16/str32; a table whose keys are
//! exactly 1..n is an array (an empty table is an empty array), any other
//! table a map in `next` order; tables nested deeper than 16 levels, nil,
//! functions, userdata and threads become nil. Unpacking accepts what
//! lua-cmsgpack accepts (no bin/ext types: "Bad data format in input."),
//! turns uint64 above 2^63 into negative numbers as Redis's build does, and
//! raises "table index is nil"/"is NaN" for such map keys.
//!
//! Bounds: decoding is iterative and never trusts a length header (each
//! element consumes input), and it stops at the 8000-slot stack limit with
//! the C module's messages; packing output is capped at
//! [`MAX_OUTPUT`] bytes (a table containing itself fans out
//! exponentially up to the nesting limit).

use mlua::{Lua, MultiValue, Table, Value};

use super::{
    LibError, LibResult, MAX_CSTACK, arg_fail, check_integer, check_string, double_to_int, fail,
    make_fn, num, number_to_integer, opt_integer,
};

/// `LUACMSGPACK_MAX_NESTING`.
const MAX_NESTING: u32 = 16;

/// Kora's cap on one `cmsgpack.pack` result (Redis has none): bounds the
/// time and memory of a pathological pack such as a table holding itself
/// several times.
pub(crate) const MAX_OUTPUT: usize = 64 << 20;

/// Kora's cap on the tables one `cmsgpack.pack` call visits (Redis has
/// none): with [`MAX_OUTPUT`] it bounds a self-referencing table's fan-out
/// to well under a second.
pub(crate) const MAX_TABLES: u32 = 1 << 20;

struct Packer {
    out: Vec<u8>,
    tables: u32,
}

impl Packer {
    fn check_size(&self) -> LibResult<()> {
        if self.out.len() > MAX_OUTPUT {
            return fail("MessagePack pack result exceeds 64 MB");
        }
        Ok(())
    }

    fn int(&mut self, n: i64) {
        let o = &mut self.out;
        if n >= 0 {
            if n <= 127 {
                o.push(n as u8);
            } else if n <= 0xff {
                o.extend_from_slice(&[0xcc, n as u8]);
            } else if n <= 0xffff {
                o.push(0xcd);
                o.extend_from_slice(&(n as u16).to_be_bytes());
            } else if n <= 0xffff_ffff {
                o.push(0xce);
                o.extend_from_slice(&(n as u32).to_be_bytes());
            } else {
                o.push(0xcf);
                o.extend_from_slice(&(n as u64).to_be_bytes());
            }
        } else if n >= -32 {
            o.push(n as i8 as u8);
        } else if n >= -128 {
            o.extend_from_slice(&[0xd0, n as i8 as u8]);
        } else if n >= -32768 {
            o.push(0xd1);
            o.extend_from_slice(&(n as i16).to_be_bytes());
        } else if n >= -2_147_483_648 {
            o.push(0xd2);
            o.extend_from_slice(&(n as i32).to_be_bytes());
        } else {
            o.push(0xd3);
            o.extend_from_slice(&n.to_be_bytes());
        }
    }

    fn number(&mut self, n: f64) {
        let i = number_to_integer(n);
        if !n.is_infinite() && i as f64 == n {
            self.int(i);
            return;
        }
        let f = n as f32;
        if f64::from(f) == n {
            self.out.push(0xca);
            self.out.extend_from_slice(&f.to_be_bytes());
        } else {
            self.out.push(0xcb);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }

    fn bytes(&mut self, s: &[u8]) {
        let len = s.len();
        let o = &mut self.out;
        if len < 32 {
            o.push(0xa0 | len as u8);
        } else if len <= 0xff {
            o.extend_from_slice(&[0xd9, len as u8]);
        } else if len <= 0xffff {
            o.push(0xda);
            o.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            o.push(0xdb);
            o.extend_from_slice(&(len as u32).to_be_bytes());
        }
        o.extend_from_slice(s);
    }

    fn header(&mut self, len: usize, fix: u8, b16: u8, b32: u8) {
        let o = &mut self.out;
        if len <= 15 {
            o.push(fix | len as u8);
        } else if len <= 0xffff {
            o.push(b16);
            o.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            o.push(b32);
            o.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }

    fn value(&mut self, v: &Value, level: u32) -> LibResult<()> {
        match v {
            Value::String(s) => self.bytes(&s.as_bytes()),
            Value::Boolean(b) => self.out.push(if *b { 0xc3 } else { 0xc2 }),
            Value::Integer(i) => self.number(*i as f64),
            Value::Number(n) => self.number(*n),
            Value::Table(t) if level < MAX_NESTING => self.table(t, level)?,
            _ => self.out.push(0xc0),
        }
        Ok(())
    }

    /// `table_is_an_array`: all keys whole numbers > 0 fitting an int, and
    /// as many keys as the largest one.
    fn is_array(t: &Table) -> LibResult<bool> {
        let mut count: i64 = 0;
        let mut max: i32 = 0;
        for pair in t.pairs::<Value, Value>() {
            let (k, _) = pair?;
            let n = match k {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => return Ok(false),
            };
            if n <= 0.0 || n.is_infinite() || f64::from(double_to_int(n)) != n {
                return Ok(false);
            }
            if n > f64::from(max) {
                max = double_to_int(n);
            }
            count += 1;
        }
        Ok(i64::from(max) == count)
    }

    fn table(&mut self, t: &Table, level: u32) -> LibResult<()> {
        self.check_size()?;
        self.tables += 1;
        if self.tables > MAX_TABLES {
            return fail("MessagePack pack visits more than 1048576 tables");
        }
        if Self::is_array(t)? {
            let len = t.raw_len();
            self.header(len, 0x90, 0xdc, 0xdd);
            for j in 1..=len {
                let v: Value = t.raw_get(j)?;
                self.value(&v, level + 1)?;
            }
        } else {
            let mut len = 0usize;
            for pair in t.pairs::<Value, Value>() {
                pair?;
                len += 1;
            }
            self.header(len, 0x80, 0xde, 0xdf);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                self.value(&k, level + 1)?;
                self.value(&v, level + 1)?;
            }
        }
        Ok(())
    }
}

fn mp_pack(lua: &Lua, args: &[Value]) -> LibResult<MultiValue> {
    if args.is_empty() {
        return arg_fail(0, "MessagePack pack needs input.");
    }
    let mut p = Packer {
        out: Vec::new(),
        tables: 0,
    };
    for a in args {
        p.value(a, 0)?;
        p.check_size()?;
    }
    Ok(MultiValue::from_vec(vec![Value::String(
        lua.create_string(&p.out)?,
    )]))
}

/// Why decoding stopped, as lua-cmsgpack reports it.
enum Stop {
    Eof,
    BadFormat,
    Raise(LibError),
}

impl From<mlua::Error> for Stop {
    fn from(e: mlua::Error) -> Self {
        Stop::Raise(LibError::Lua(e))
    }
}

/// One open container. The tables themselves (and pending map keys) live
/// in Lua-side work tables, not in Rust: mlua holds every Rust-side Lua
/// value in a bounded auxiliary stack, and nesting may go thousands deep.
enum Frame {
    Array { remaining: u64, index: i64 },
    Map { remaining: u64, has_key: bool },
}
struct Cursor<'a> {
    p: &'a [u8],
}

impl Cursor<'_> {
    fn need(&self, n: usize) -> Result<(), Stop> {
        if self.p.len() < n {
            Err(Stop::Eof)
        } else {
            Ok(())
        }
    }
    fn be(&self, at: usize, n: usize) -> u64 {
        self.p[at..at + n]
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b))
    }
    fn consume(&mut self, n: usize) {
        self.p = &self.p[n..];
    }
}

enum Item {
    Value(Value),
    Array(u64),
    Map(u64),
}

/// Reads one item's header (and a scalar's payload) from the cursor.
fn read_item(lua: &Lua, c: &mut Cursor<'_>) -> Result<Item, Stop> {
    let b = c.p[0];
    let int = |v: i64| Item::Value(num(v as f64));
    let item = match b {
        0xcc => {
            c.need(2)?;
            let v = int(c.be(1, 1) as i64);
            c.consume(2);
            v
        }
        0xd0 => {
            c.need(2)?;
            let v = int(i64::from(c.p[1] as i8));
            c.consume(2);
            v
        }
        0xcd => {
            c.need(3)?;
            let v = int(c.be(1, 2) as i64);
            c.consume(3);
            v
        }
        0xd1 => {
            c.need(3)?;
            let v = int(i64::from(c.be(1, 2) as u16 as i16));
            c.consume(3);
            v
        }
        0xce => {
            c.need(5)?;
            let v = int(c.be(1, 4) as i64);
            c.consume(5);
            v
        }
        0xd2 => {
            c.need(5)?;
            let v = int(i64::from(c.be(1, 4) as u32 as i32));
            c.consume(5);
            v
        }
        // uint64 goes through lua_pushinteger in Redis's Lua 5.1 build,
        // so values from 2^63 up come out negative.
        0xcf | 0xd3 => {
            c.need(9)?;
            let v = int(c.be(1, 8) as i64);
            c.consume(9);
            v
        }
        0xc0 => {
            c.consume(1);
            Item::Value(Value::Nil)
        }
        0xc3 | 0xc2 => {
            c.consume(1);
            Item::Value(Value::Boolean(b == 0xc3))
        }
        0xca => {
            c.need(5)?;
            let f = f32::from_bits(c.be(1, 4) as u32);
            c.consume(5);
            Item::Value(num(f64::from(f)))
        }
        0xcb => {
            c.need(9)?;
            let d = f64::from_bits(c.be(1, 8));
            c.consume(9);
            Item::Value(num(d))
        }
        0xd9..=0xdb => {
            let hl = match b {
                0xd9 => 1,
                0xda => 2,
                _ => 4,
            };
            c.need(1 + hl)?;
            let l = c.be(1, hl) as usize;
            c.need((1 + hl).saturating_add(l))?;
            let s = lua.create_string(&c.p[1 + hl..1 + hl + l])?;
            c.consume(1 + hl + l);
            Item::Value(Value::String(s))
        }
        0xdc..=0xdf => {
            let hl = if b == 0xdc || b == 0xde { 2 } else { 4 };
            c.need(1 + hl)?;
            let l = c.be(1, hl);
            c.consume(1 + hl);
            if b <= 0xdd {
                Item::Array(l)
            } else {
                Item::Map(l)
            }
        }
        _ if b & 0x80 == 0 => {
            c.consume(1);
            int(i64::from(b))
        }
        _ if b & 0xe0 == 0xe0 => {
            c.consume(1);
            int(i64::from(b as i8))
        }
        _ if b & 0xe0 == 0xa0 => {
            let l = usize::from(b & 0x1f);
            c.need(1 + l)?;
            let s = lua.create_string(&c.p[1..1 + l])?;
            c.consume(1 + l);
            Item::Value(Value::String(s))
        }
        _ if b & 0xf0 == 0x90 => {
            c.consume(1);
            Item::Array(u64::from(b & 0xf))
        }
        _ if b & 0xf0 == 0x80 => {
            c.consume(1);
            Item::Map(u64::from(b & 0xf))
        }
        _ => return Err(Stop::BadFormat),
    };
    Ok(item)
}

const TOO_MANY: &str =
    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";

/// Lua-side scratch space for [`decode_one`]: open tables by depth and
/// their pending keys.
struct Work {
    tables: Table,
    keys: Table,
}

/// Decodes one top-level value with `base` stack slots already in use,
/// keeping the C module's slot count (table + index per array level, table
/// [+ key] per map level) so nesting fails where Redis's does.
fn decode_one(lua: &Lua, c: &mut Cursor<'_>, base: i64, work: &Work) -> Result<Value, Stop> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut used = base;
    loop {
        c.need(1)?;
        if used + 1 > MAX_CSTACK {
            return Err(Stop::Raise(LibError::Where(TOO_MANY.into())));
        }
        let mut v = match read_item(lua, c)? {
            Item::Value(v) => v,
            Item::Array(l) => {
                let t = lua.create_table()?;
                if used + 2 > MAX_CSTACK {
                    return Err(Stop::Raise(LibError::Where(
                        "stack overflow (in function mp_decode_to_lua_array)".into(),
                    )));
                }
                if l == 0 {
                    Value::Table(t)
                } else {
                    work.tables.raw_set(stack.len() + 1, t)?;
                    stack.push(Frame::Array {
                        remaining: l,
                        index: 1,
                    });
                    used += 2;
                    continue;
                }
            }
            Item::Map(l) => {
                let t = lua.create_table()?;
                if l == 0 {
                    Value::Table(t)
                } else {
                    work.tables.raw_set(stack.len() + 1, t)?;
                    stack.push(Frame::Map {
                        remaining: l,
                        has_key: false,
                    });
                    used += 1;
                    continue;
                }
            }
        };
        // Attach the finished value to its parents, closing those it
        // completes.
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else {
                return Ok(v);
            };
            let done = match top {
                Frame::Array { remaining, index } => {
                    let t: Table = work.tables.raw_get(depth)?;
                    t.raw_set(*index, v)?;
                    *index += 1;
                    *remaining -= 1;
                    *remaining == 0
                }
                Frame::Map { remaining, has_key } => {
                    if !*has_key {
                        if let Value::Nil = v {
                            return Err(Stop::Raise(LibError::Plain("table index is nil".into())));
                        }
                        if let Value::Number(n) = v
                            && n.is_nan()
                        {
                            return Err(Stop::Raise(LibError::Plain("table index is NaN".into())));
                        }
                        work.keys.raw_set(depth, v)?;
                        *has_key = true;
                        used += 1;
                        break;
                    }
                    *has_key = false;
                    used -= 1;
                    let k: Value = work.keys.raw_get(depth)?;
                    work.keys.raw_set(depth, Value::Nil)?;
                    let t: Table = work.tables.raw_get(depth)?;
                    t.raw_set(k, v)?;
                    *remaining -= 1;
                    *remaining == 0
                }
            };
            if !done {
                break;
            }
            let frame = stack.pop().expect("non-empty");
            used -= match frame {
                Frame::Array { .. } => 2,
                Frame::Map { .. } => 1,
            };
            let t: Table = work.tables.raw_get(depth)?;
            work.tables.raw_set(depth, Value::Nil)?;
            v = Value::Table(t);
        }
    }
}

/// `mp_unpack_full`: `limit` 0 with `offset` 0 means "everything, no
/// offset result"; `base` is the stack slots the arguments occupy.
fn unpack_full(
    lua: &Lua,
    args: &[Value],
    limit: i64,
    offset: i64,
    base: i64,
) -> LibResult<MultiValue> {
    let s = check_string(lua, args, 1)?;
    let bytes = s.as_bytes();
    let len = bytes.len();
    // C passes these as int.
    let (limit, offset) = (limit as i32, offset as i32);
    if offset < 0 || limit < 0 {
        return fail(format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            len as i32
        ));
    } else if offset as usize > len {
        return fail(format!(
            "Start offset {offset} greater than input length {}.",
            len as i32
        ));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all { i32::MAX } else { limit };
    let mut c = Cursor {
        p: &bytes[offset as usize..],
    };
    // Results accumulate in a Lua table (see `Frame`); slot 1 is the
    // offset when one is returned.
    let out = lua.create_table()?;
    let first = if decode_all { 1 } else { 2 };
    let work = Work {
        tables: lua.create_table()?,
        keys: lua.create_table()?,
    };
    let mut cnt: i32 = 0;
    while !c.p.is_empty() && cnt < limit {
        match decode_one(lua, &mut c, base + i64::from(cnt), &work) {
            Ok(v) => out.raw_set(i64::from(cnt) + first, v)?,
            Err(Stop::Eof) => return fail("Missing bytes in input."),
            Err(Stop::BadFormat) => return fail("Bad data format in input."),
            Err(Stop::Raise(e)) => return Err(e),
        }
        cnt += 1;
    }
    if !decode_all {
        if base + i64::from(cnt) + 1 > MAX_CSTACK {
            return fail("stack overflow (in function mp_check_stack)");
        }
        let next = if c.p.is_empty() {
            -1
        } else {
            (len - c.p.len()) as i32
        };
        out.raw_set(1, num(f64::from(next)))?;
    }
    super::results(lua, out, (i64::from(cnt) + first - 1) as usize)
}

/// Builds the `cmsgpack` table.
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", make_fn(lua, mp_pack)?)?;
    t.raw_set(
        "unpack",
        make_fn(lua, |lua, a| {
            let base = a.len().max(1) as i64;
            unpack_full(lua, a, 0, 0, base)
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        make_fn(lua, |lua, a| {
            let offset = opt_integer(a, 2, 0)?;
            unpack_full(lua, &a[..a.len().min(1)], 1, offset, 1)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        make_fn(lua, |lua, a| {
            let limit = check_integer(a, 2)?;
            let offset = opt_integer(a, 3, 0)?;
            unpack_full(lua, &a[..a.len().min(1)], limit, offset, 1)
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, eval, eval_err, eval_in, render, vm};

    const HEX: &str = "local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end ";

    // Expected values: redis-server 7.0.15's replies to the same snippets
    // (EVAL "<snippet>" 0), recorded 2026-11-30.
    #[test]
    fn lualib_cmsgpack_pack_matches_redis() {
        assert_eq!(
            eval(&format!(
                "{HEX} return hex(cmsgpack.pack(1, -1, 127, 128, 255, 256, 65535, 65536, 2^32-1, 2^32, -32, -33, -128, \
                 -129, -32768, -32769, -2^31, -2^31-1, 0.5, 0.1, 1/0, 0/0, -0.0, 2^63, -2^63, 1e300))"
            )),
            "\"01ff7fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000e0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffffca3f000000cb3fb999999999999aca7f800000cbfff800000000000000ca5f000000d38000000000000000cb7e37e43c8800759c\""
        );
        assert_eq!(
            eval(&format!(
                "{HEX} return hex(cmsgpack.pack({{}}, {{1,2,3}}, {{a=1}}, {{[1]=1,[3]=3}}, true, false, nil, 'abc', \
                 string.rep('x',31), string.rep('x',32), cmsgpack.pack, {{[1.5]=2}}, {{[0]=1}}, {{[-1]=1}}))"
            )),
            "\"909301020381a161018201010303c3c2c0a3616263bf78787878787878787878787878787878787878787878787878787878787878d9207878787878787878787878787878787878787878787878787878787878787878c081ca3fc000000281000181ff01\""
        );
        assert_eq!(
            eval(&format!("{HEX} return hex(cmsgpack.pack({{1,nil,3}}))")),
            "\"8201010303\""
        );
        assert_eq!(
            eval(&format!(
                "{HEX} return hex(cmsgpack.pack(string.rep('x', 256)):sub(1,10))"
            )),
            "\"da010078787878787878\""
        );
        assert_eq!(
            eval(&format!(
                "{HEX} return hex(cmsgpack.pack(string.rep('x', 65536)):sub(1,12))"
            )),
            "\"db0001000078787878787878\""
        );
        assert_eq!(
            eval(&format!(
                "{HEX} local t={{}} for i=1,16 do t[i]=i end local m={{}} for i=1,16 do m['k'..i]=i end \
                 return {{hex(cmsgpack.pack(t)):sub(1,8), hex(cmsgpack.pack(m)):sub(1,8)}}"
            )),
            r#"{"dc001001","de0010a3"}"#
        );
        // Nesting deeper than 16 becomes nil (also what stops cycles).
        assert_eq!(
            eval(&format!(
                "{HEX} local t={{}} local c=t for i=1,20 do c[1]={{}} c=c[1] end return hex(cmsgpack.pack(t))"
            )),
            "\"91919191919191919191919191919191c0\""
        );
    }

    #[test]
    fn lualib_cmsgpack_unpack_matches_redis() {
        assert_eq!(
            eval(
                "local t = {cmsgpack.unpack(cmsgpack.pack({1,2,{a=1}}, 'x'))} return {t[1][3].a, t[2]}"
            ),
            r#"{1,"x"}"#
        );
        assert_eq!(eval("return {cmsgpack.unpack('')}"), "{}");
        assert_eq!(
            eval("return {cmsgpack.unpack(string.char(1,2,3))}"),
            "{1,2,3}"
        );
        assert_eq!(
            eval("return {cmsgpack.unpack_one(string.char(1,2,3))}"),
            "{1,1}"
        );
        assert_eq!(
            eval("return {cmsgpack.unpack_one(string.char(1,2,3), 2)}"),
            "{-1,3}"
        );
        assert_eq!(
            eval("return {cmsgpack.unpack_one(string.char(1,2,3), 3)}"),
            "{-1}"
        );
        assert_eq!(
            eval("return {cmsgpack.unpack_limit(string.char(1,2,3), 2)}"),
            "{2,1,2}"
        );
        assert_eq!(
            eval("return {cmsgpack.unpack_limit(string.char(1,2,3), 0, 1)}"),
            "{1}"
        );
        assert_eq!(
            eval("return {cmsgpack.unpack_limit(string.char(1,2,3), 0)}"),
            "{1,2,3}"
        );
        assert_eq!(
            eval(
                "return tostring(cmsgpack.unpack(string.char(0xcf, 0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff)))"
            ),
            "\"-1\""
        );
        assert_eq!(
            eval("return tostring(cmsgpack.unpack(string.char(0xd3, 0x80,0,0,0,0,0,0,0)))"),
            "\"-9.2233720368548e+18\""
        );
        assert_eq!(
            eval("return tostring(cmsgpack.unpack(string.char(0xca, 0x3f,0xc0,0,0)))"),
            "\"1.5\""
        );
        assert_eq!(
            eval(
                "return {cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION}"
            ),
            r#"{"cmsgpack","lua-cmsgpack 0.4.0","Copyright (C) 2012, Salvatore Sanfilippo","MessagePack C implementation for Lua"}"#
        );
    }

    #[test]
    fn lualib_cmsgpack_errors_match_redis() {
        let cases = [
            (
                "return cmsgpack.pack()",
                "user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)",
            ),
            (
                "return {cmsgpack.unpack(string.char(0xc4, 1, 65))}",
                "user_script:1: Bad data format in input.",
            ),
            (
                "return {cmsgpack.unpack(string.char(0xc1))}",
                "user_script:1: Bad data format in input.",
            ),
            (
                "return {cmsgpack.unpack(string.char(0xd4, 1, 65))}",
                "user_script:1: Bad data format in input.",
            ),
            (
                "return {cmsgpack.unpack(string.char(0x92, 1))}",
                "user_script:1: Missing bytes in input.",
            ),
            // An array header claiming 4G elements: bounded by the input.
            (
                "return {cmsgpack.unpack(string.char(0xdd, 255,255,255,255, 1))}",
                "user_script:1: Missing bytes in input.",
            ),
            (
                "return {cmsgpack.unpack(string.char(0xdb, 255,255,255,255, 1))}",
                "user_script:1: Missing bytes in input.",
            ),
            (
                "return {cmsgpack.unpack(string.char(0x81, 0xc0, 1))}",
                "table index is nil",
            ),
            (
                "return {cmsgpack.unpack(string.char(0x81, 0xcb, 0x7f,0xf8,0,0,0,0,0,0, 1))}",
                "table index is NaN",
            ),
            (
                "return {cmsgpack.unpack()}",
                "user_script:1: bad argument #1 to 'unpack' (string expected, got no value)",
            ),
            (
                "return {cmsgpack.unpack_one(string.char(1,2,3), 4)}",
                "user_script:1: Start offset 4 greater than input length 3.",
            ),
            (
                "return {cmsgpack.unpack_one(string.char(1,2,3), -1)}",
                "user_script:1: Invalid request to unpack with offset of -1 and limit of 3.",
            ),
            (
                "return {cmsgpack.unpack_limit(string.char(1,2,3))}",
                "user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)",
            ),
            (
                "return #{cmsgpack.unpack(string.rep(string.char(1), 9000))}",
                "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
            ),
            (
                "return cmsgpack.unpack(string.rep(string.char(0x91), 9000)..string.char(1))",
                "user_script:1: stack overflow (in function mp_decode_to_lua_array)",
            ),
            (
                "return cmsgpack.unpack(string.rep(string.char(0x81, 1), 9000)..string.char(1))",
                "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
            ),
            (
                "return cmsgpack.unpack(string.rep(string.char(0x81), 9000)..string.char(1))",
                "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
            ),
        ];
        for (code, want) in cases {
            assert_eq!(eval_err(code), want, "{code}");
        }
    }

    #[test]
    fn lualib_cmsgpack_limits_match_redis() {
        // redis-server 7.0.15: 7999 values unpack, the 8000th overflows;
        // 3998 nested arrays decode, 3999 do not.
        assert_eq!(
            eval("return select('#', cmsgpack.unpack(string.rep(string.char(1), 7999)))"),
            "7999"
        );
        assert_eq!(
            eval_err("return select('#', cmsgpack.unpack(string.rep(string.char(1), 8000)))"),
            "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
        );
        assert_eq!(
            eval(
                "return type(cmsgpack.unpack(string.rep(string.char(0x91), 3999)..string.char(1)))"
            ),
            "\"table\""
        );
        assert_eq!(
            eval_err(
                "return type(cmsgpack.unpack(string.rep(string.char(0x91), 4000)..string.char(1)))"
            ),
            "user_script:1: stack overflow (in function mp_decode_to_lua_array)"
        );
        assert_eq!(
            eval(
                "return type(cmsgpack.unpack(string.rep(string.char(0x81,1), 3999)..string.char(1)))"
            ),
            "\"table\""
        );
        assert_eq!(
            eval_err(
                "return type(cmsgpack.unpack(string.rep(string.char(0x81,1), 4000)..string.char(1)))"
            ),
            "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
        );
        // Maps nested through their keys: one slot per level.
        assert_eq!(
            eval_err(
                "return type(cmsgpack.unpack(string.rep(string.char(0x81), 7997)..string.char(1, 1)))"
            ),
            "user_script:1: Missing bytes in input."
        );
        assert_eq!(
            eval_err(
                "return type(cmsgpack.unpack(string.rep(string.char(0x81), 7998)..string.char(1, 1)))"
            ),
            "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
        );
    }

    /// A random Lua value as source text: nested tables (arrays and maps),
    /// integers, floats, strings with any bytes, booleans.
    fn random_value(rng: &mut Rng, depth: u32) -> String {
        match rng.below(if depth > 3 { 5 } else { 7 }) {
            0 => format!("{}", rng.next() as i64 >> rng.below(64)),
            1 => format!("{}", (rng.next() >> 11) as f64 / 1024.0 - 4e12),
            2 => {
                let b = rng.bytes(40);
                format!(
                    "'{}'",
                    b.iter().map(|c| format!("\\{c}")).collect::<String>()
                )
            }
            3 => (if rng.below(2) == 0 { "true" } else { "false" }).into(),
            4 => format!("{}", rng.below(300) as i64 - 150),
            5 => {
                let n = rng.below(20);
                let items: Vec<String> = (0..n).map(|_| random_value(rng, depth + 1)).collect();
                format!("{{{}}}", items.join(","))
            }
            _ => {
                let n = rng.below(10);
                let items: Vec<String> = (0..n)
                    .map(|i| format!("['k{i}']={}", random_value(rng, depth + 1)))
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    #[test]
    fn lualib_cmsgpack_round_trips_random_values() {
        let lua = vm();
        let mut rng = Rng::new(2014);
        for _ in 0..300 {
            let v = random_value(&mut rng, 0);
            let code = format!("local v = {v} return v, cmsgpack.unpack(cmsgpack.pack(v))");
            let out: mlua::MultiValue = lua.load(&code).call(()).unwrap();
            assert_eq!(render(&out[0]), render(&out[1]), "{v}");
        }
        // Several values in one stream, walked with unpack_one.
        assert_eq!(
            eval_in(
                &lua,
                "local s = cmsgpack.pack(1, 'a', {2}) local off, a = cmsgpack.unpack_one(s) local off2, b = cmsgpack.unpack_one(s, off) \
                 local off3, c = cmsgpack.unpack_one(s, off2) return {a, b, c[1], off3}"
            ),
            r#"{1,"a",2,-1}"#
        );
    }

    #[test]
    fn lualib_cmsgpack_random_bytes_never_panic() {
        let lua = vm();
        let f = lua
            .load("return function(s) return pcall(cmsgpack.unpack, s) end")
            .eval::<mlua::Function>()
            .unwrap();
        let g = lua
            .load("return function(s, n, o) return pcall(cmsgpack.unpack_limit, s, n, o) end")
            .eval::<mlua::Function>()
            .unwrap();
        let mut rng = Rng::new(99);
        for _ in 0..3000 {
            let b = rng.bytes(48);
            let s = lua.create_string(&b).unwrap();
            let _: mlua::MultiValue = f.call(s.clone()).unwrap();
            let _: mlua::MultiValue = g
                .call((s, rng.below(4) as i64, rng.below(6) as i64 - 1))
                .unwrap();
        }
    }

    #[test]
    fn lualib_cmsgpack_self_reference_is_bounded() {
        // A table holding itself 4 times fans out 4^16 ways before the
        // nesting limit; Kora caps the work instead of running away.
        let lua = vm();
        let err = eval_in(
            &lua,
            "local t = {} t[1] = t t[2] = t t[3] = t t[4] = t local ok, e = pcall(cmsgpack.pack, t) return ok, e",
        );
        assert_eq!(
            err,
            "false \"MessagePack pack visits more than 1048576 tables\""
        );
        let err = eval_in(
            &lua,
            "local ok, e = pcall(cmsgpack.pack, string.rep('x', 40000000), string.rep('y', 40000000)) return ok, e",
        );
        assert_eq!(err, "false \"MessagePack pack result exceeds 64 MB\"");
        // Singly self-referential: 16 levels then nil, as in Redis.
        assert_eq!(
            eval_in(&lua, "local t = {} t[1] = t return #cmsgpack.pack(t)"),
            "17"
        );
    }
}
