//! `struct`: Roberto Ierusalimschy's binary pack/unpack library (0.2, as
//! patched by Redis) on an x86-64 Linux ABI: `b/B` 1 byte, `h/H` 2, `l/L`
//! and `T` 8, `i/I[n]` n bytes (default 4, at most 32), `f` 4, `d` 8,
//! `c[n]` n chars (`c0`: the whole string / a size read before), `s` a
//! NUL-terminated string, `x` a pad byte, `<`/`>` endianness, `![n]`
//! maximum alignment (default 8), spaces ignored.
//!
//! Bounds: sizes in the format are checked for `int` overflow and every
//! `c`/`x` size is checked against the data actually given, so a hostile
//! format never allocates more than its arguments; `unpack` stops at the
//! same 8000-slot stack limit as the C module.

use mlua::{Lua, MultiValue, Table, Value};

use super::{
    LibResult, MAX_CSTACK, ResultList, arg_fail, arg_type_name, check_string, fail, make_fn, num,
    opt_integer, to_number,
};

const MAXINTSIZE: usize = 32;
const MAXALIGN: i64 = 8;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Big,
    Little,
}

struct Header {
    endian: Endian,
    align: i64,
}

impl Header {
    fn new() -> Self {
        Header {
            endian: Endian::Little,
            align: 1,
        }
    }
}

/// `getnum`: digits at `fmt[*pos..]` or `df`; errors past `INT_MAX`.
fn getnum(fmt: &[u8], pos: &mut usize, df: i64) -> LibResult<i64> {
    if *pos >= fmt.len() || !fmt[*pos].is_ascii_digit() {
        return Ok(df);
    }
    let mut a: i64 = 0;
    while *pos < fmt.len() && fmt[*pos].is_ascii_digit() {
        let d = i64::from(fmt[*pos] - b'0');
        if a > i64::from(i32::MAX) / 10 || a * 10 > i64::from(i32::MAX) - d {
            return fail("integral size overflow");
        }
        a = a * 10 + d;
        *pos += 1;
    }
    Ok(a)
}

fn optsize(opt: u8, fmt: &[u8], pos: &mut usize) -> LibResult<usize> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' => 8,
        b'f' => 4,
        b'd' => 8,
        b'x' => 1,
        b'c' => getnum(fmt, pos, 1)? as usize,
        b'i' | b'I' => {
            let sz = getnum(fmt, pos, 4)?;
            if sz as usize > MAXINTSIZE {
                return fail(format!(
                    "integral size {sz} is larger than limit of {MAXINTSIZE}"
                ));
            }
            sz as usize
        }
        _ => 0,
    })
}

/// `gettoalign`: padding before an item of `size` at offset `len` (the C
/// formula, including its odd results for sizes that are not powers of 2).
fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align as usize);
    (size.wrapping_sub(len & size.wrapping_sub(1))) & size.wrapping_sub(1)
}

fn controloptions(opt: u8, fmt: &[u8], pos: &mut usize, h: &mut Header) -> LibResult<()> {
    match opt {
        b' ' => Ok(()),
        b'>' => {
            h.endian = Endian::Big;
            Ok(())
        }
        b'<' => {
            h.endian = Endian::Little;
            Ok(())
        }
        b'!' => {
            let a = getnum(fmt, pos, MAXALIGN)?;
            if !(a > 0 && a & (a - 1) == 0) {
                return fail(format!("alignment {a} is not a power of 2"));
            }
            h.align = a;
            Ok(())
        }
        _ => arg_fail(1, format!("invalid format option '{}'", opt as char)),
    }
}

/// The format as C sees it (up to the first NUL).
fn c_str(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

fn put_integer(out: &mut Vec<u8>, n: f64, endian: Endian, size: usize) {
    let mut value: u64 = if n < 0.0 {
        super::number_to_integer(n) as u64
    } else {
        double_to_u64(n)
    };
    let mut buf = [0u8; MAXINTSIZE];
    for i in 0..size {
        let slot = if endian == Endian::Little {
            i
        } else {
            size - 1 - i
        };
        buf[slot] = (value & 0xff) as u8;
        value >>= 8;
    }
    out.extend_from_slice(&buf[..size]);
}

/// C's `(unsigned long)` of a non-negative double on x86-64 (gcc's
/// sequence): values from 2^64 up and NaN come out as the bits
/// `cvttsd2si` gives.
fn double_to_u64(n: f64) -> u64 {
    if n < 9.223_372_036_854_776e18 {
        super::number_to_integer(n) as u64
    } else {
        (super::number_to_integer(n - 9.223_372_036_854_776e18) as u64) ^ (1u64 << 63)
    }
}

fn get_integer(b: &[u8], endian: Endian, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    for i in 0..size {
        let byte = if endian == Endian::Big {
            b[i]
        } else {
            b[size - 1 - i]
        };
        l = (l << 8) | u64::from(byte);
    }
    if !signed {
        l as f64
    } else {
        // The C shift count wraps modulo 64 on x86-64.
        let mask = u64::MAX.wrapping_shl((size * 8).wrapping_sub(1) as u32);
        if l & mask != 0 {
            l |= mask;
        }
        l as i64 as f64
    }
}

fn b_pack(lua: &Lua, args: &[Value]) -> LibResult<MultiValue> {
    let fmt_s = check_string(lua, args, 1)?;
    let fmt_b = fmt_s.as_bytes();
    let fmt = c_str(&fmt_b);
    let mut h = Header::new();
    let mut arg = 2usize;
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    // The C function pushes a nil separator after the arguments, so the
    // first missing argument reads as nil, later ones as "no value".
    let getarg = |i: usize| -> Value { args.get(i - 1).cloned().unwrap_or(Value::Nil) };
    let missing_name = |i: usize| {
        if i == args.len() + 1 {
            "nil"
        } else {
            arg_type_name(args, i)
        }
    };
    let need_number = |i: usize| -> LibResult<f64> {
        match args.get(i - 1).and_then(to_number) {
            Some(n) => Ok(n),
            None => arg_fail(
                i as i32,
                format!("number expected, got {}", missing_name(i)),
            ),
        }
    };
    while pos < fmt.len() {
        let opt = fmt[pos];
        pos += 1;
        let mut size = optsize(opt, fmt, &mut pos)?;
        let toalign = gettoalign(out.len(), &h, opt, size);
        out.resize(out.len() + toalign, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = need_number(arg)?;
                arg += 1;
                put_integer(&mut out, n, h.endian, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = need_number(arg)? as f32;
                arg += 1;
                let b = if h.endian == Endian::Little {
                    f.to_le_bytes()
                } else {
                    f.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'd' => {
                let d = need_number(arg)?;
                arg += 1;
                let b = if h.endian == Endian::Little {
                    d.to_le_bytes()
                } else {
                    d.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'c' | b's' => {
                let v = getarg(arg);
                let s = match v {
                    Value::String(s) => s,
                    Value::Integer(_) | Value::Number(_) => check_string(lua, args, arg)?,
                    _ => {
                        return arg_fail(
                            arg as i32,
                            format!("string expected, got {}", missing_name(arg)),
                        );
                    }
                };
                arg += 1;
                let sb = s.as_bytes();
                let l = sb.len();
                if size == 0 {
                    size = l;
                }
                if l < size {
                    // The C code checks after advancing `arg`.
                    return arg_fail(arg as i32, "string too short");
                }
                out.extend_from_slice(&sb[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => controloptions(opt, fmt, &mut pos, &mut h)?,
        }
    }
    Ok(MultiValue::from_vec(vec![Value::String(
        lua.create_string(&out)?,
    )]))
}

fn b_unpack(lua: &Lua, args: &[Value]) -> LibResult<MultiValue> {
    let fmt_s = check_string(lua, args, 1)?;
    let data_s = check_string(lua, args, 2)?;
    let fmt_b = fmt_s.as_bytes();
    let fmt = c_str(&fmt_b);
    let data_b = data_s.as_bytes();
    let data: &[u8] = &data_b;
    let ld = data.len();
    let start = opt_integer(args, 3, 1)?;
    if start == 0 {
        return arg_fail(3, "offset must be 1 or greater");
    }
    // size_t arithmetic: a negative offset wraps to a huge position that
    // then fails the length check, as in C.
    let mut pos: usize = (start as u64 as usize).wrapping_sub(1);
    let mut h = Header::new();
    let mut out = ResultList::new(lua)?;
    let base = args.len().max(2) as i64;
    let mut fp = 0usize;
    while fp < fmt.len() {
        let opt = fmt[fp];
        fp += 1;
        let mut size = optsize(opt, fmt, &mut fp)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return arg_fail(2, "data string too short");
        }
        if base + out.len() as i64 + 2 > MAX_CSTACK {
            return fail("stack overflow (too many results)");
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                out.push(num(get_integer(
                    &data[pos..pos + size],
                    h.endian,
                    signed,
                    size,
                )))?;
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().unwrap_or([0; 4]);
                let f = if h.endian == Endian::Little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(num(f64::from(f)))?;
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().unwrap_or([0; 8]);
                let d = if h.endian == Endian::Little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(num(d))?;
            }
            b'c' => {
                if size == 0 {
                    let prev = if out.len() == 0 {
                        None
                    } else {
                        to_number(&out.last()?)
                    };
                    let Some(n) = prev else {
                        return fail("format 'c0' needs a previous size");
                    };
                    out.pop()?;
                    size = if n < 0.0 {
                        super::number_to_integer(n) as u64 as usize
                    } else {
                        double_to_u64(n) as usize
                    };
                    if !(size <= ld && pos <= ld - size) {
                        return arg_fail(2, "data string too short");
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?))?;
            }
            b's' => {
                let Some(e) = data[pos..].iter().position(|&c| c == 0) else {
                    return fail("unfinished string in data");
                };
                size = e + 1;
                out.push(Value::String(lua.create_string(&data[pos..pos + e])?))?;
            }
            _ => controloptions(opt, fmt, &mut fp, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    out.push(num(pos.wrapping_add(1) as i64 as f64))?;
    out.finish(lua)
}

fn b_size(lua: &Lua, args: &[Value]) -> LibResult<MultiValue> {
    let fmt_s = check_string(lua, args, 1)?;
    let fmt_b = fmt_s.as_bytes();
    let fmt = c_str(&fmt_b);
    let mut h = Header::new();
    let mut pos = 0usize;
    let mut fp = 0usize;
    while fp < fmt.len() {
        let opt = fmt[fp];
        fp += 1;
        let size = optsize(opt, fmt, &mut fp)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return arg_fail(1, "option 's' has no fixed size");
        } else if opt == b'c' && size == 0 {
            return arg_fail(1, "option 'c0' has no fixed size");
        }
        if !opt.is_ascii_alphanumeric() {
            controloptions(opt, fmt, &mut fp, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(MultiValue::from_vec(vec![num(pos as i64 as f64)]))
}

/// Builds the `struct` table.
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", make_fn(lua, b_pack)?)?;
    t.raw_set("unpack", make_fn(lua, b_unpack)?)?;
    t.raw_set("size", make_fn(lua, b_size)?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, eval, eval_err, eval_in, vm};

    const HEX: &str = "local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end ";

    // Expected values: redis-server 7.0.15's replies to the same snippets
    // (EVAL "<snippet>" 0), recorded 2026-11-30.
    #[test]
    fn lualib_struct_pack_matches_redis() {
        let got = eval(&format!(
            "{HEX} return {{hex(struct.pack('>I2', 258)), hex(struct.pack('<i4', -2)), \
             hex(struct.pack('bBhHlLT', -1, 255, -2, 65535, -3, 4, 5)), hex(struct.pack('!4 b i', 1, 2)), \
             hex(struct.pack('!b d', 1, 2)), hex(struct.pack('>d f', 1.5, 0.1)), hex(struct.pack('s', 'ab')), \
             hex(struct.pack('c0', 'abc')), hex(struct.pack('c2', 'abc')), hex(struct.pack('x')), \
             hex(struct.pack('<i16', -1)), hex(struct.pack('>i12', 1))}}"
        ));
        assert_eq!(
            got,
            r#"{"0102","feffffff","fffffefffffffdffffffffffffff04000000000000000500000000000000","0100000002000000","01000000000000000000000000000040","3ff80000000000003dcccccd","616200","616263","6162","00","ffffffffffffffff0000000000000000","000000000000000000000001"}"#
        );
        assert_eq!(
            eval(
                "return {struct.size('bhil'), struct.size('!bhil'), struct.size('!2 b d'), struct.size('>I3 c5')}"
            ),
            "{15,16,10,8}"
        );
    }

    #[test]
    fn lualib_struct_unpack_matches_redis() {
        assert_eq!(
            eval(
                "return {struct.unpack('>I2 <i4 b', string.char(1,2, 0xfe,0xff,0xff,0xff, 0x80))}"
            ),
            "{258,-2,-128,8}"
        );
        assert_eq!(
            eval("return {struct.unpack('s s', 'ab\\0cd\\0')}"),
            r#"{"ab","cd",7}"#
        );
        assert_eq!(
            eval("return {struct.unpack('b c0', string.char(2)..'xyz')}"),
            r#"{"xy",4}"#
        );
        assert_eq!(eval("return {struct.unpack('b', 'xyz', 3)}"), "{122,4}");
        assert_eq!(
            eval("return {struct.unpack('>d', struct.pack('>d', 0.1))}"),
            "{0.1,9}"
        );
        assert_eq!(
            eval("return {struct.unpack('<i16', string.rep(string.char(255), 16))}"),
            "{-1,17}"
        );
        assert_eq!(
            eval("return {tostring(struct.unpack('<i8', string.char(0,0,0,0,0,0,0,128)))}"),
            r#"{"-9.2233720368548e+18"}"#
        );
    }

    #[test]
    fn lualib_struct_errors_match_redis() {
        let cases = [
            (
                "return struct.size('s')",
                "user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)",
            ),
            (
                "return struct.pack('c999999999999', 'a')",
                "user_script:1: integral size overflow",
            ),
            (
                "return struct.pack('c2147483648','a')",
                "user_script:1: integral size overflow",
            ),
            (
                "return struct.pack('c2', 'a')",
                "user_script:1: bad argument #3 to 'pack' (string too short)",
            ),
            (
                "return struct.pack('i33', 1)",
                "user_script:1: integral size 33 is larger than limit of 32",
            ),
            (
                "return struct.pack('!3', 1)",
                "user_script:1: alignment 3 is not a power of 2",
            ),
            (
                "return struct.pack('!0')",
                "user_script:1: alignment 0 is not a power of 2",
            ),
            (
                "return struct.pack('z', 1)",
                "user_script:1: bad argument #1 to 'pack' (invalid format option 'z')",
            ),
            (
                "return struct.pack('i')",
                "user_script:1: bad argument #2 to 'pack' (number expected, got nil)",
            ),
            (
                "return {struct.unpack('s', 'ab')}",
                "user_script:1: unfinished string in data",
            ),
            (
                "return {struct.unpack('c0', 'xyz')}",
                "user_script:1: format 'c0' needs a previous size",
            ),
            (
                "return {struct.unpack('i4', 'xyz')}",
                "user_script:1: bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "return {struct.unpack('b', 'xyz', 4)}",
                "user_script:1: bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "return {struct.unpack('b', 'xyz', 5)}",
                "user_script:1: bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "return {struct.unpack('b', 'xyz', 0)}",
                "user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)",
            ),
            (
                "return {struct.unpack('b', 'xyz', -1)}",
                "user_script:1: bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "return #{struct.unpack(string.rep('b', 9000), string.rep('a', 9000))}",
                "user_script:1: stack overflow (too many results)",
            ),
        ];
        for (code, want) in cases {
            assert_eq!(eval_err(code), want, "{code}");
        }
        // The largest result list Redis allows still works.
        // redis-server 7.0.15: 7997 items unpack (7998 results), 7998 do not.
        assert_eq!(
            eval("return select('#', struct.unpack(string.rep('b', 7997), string.rep('a', 7997)))"),
            "7998"
        );
        assert_eq!(
            eval(
                "return select('#', struct.unpack(string.rep('c1', 7997), string.rep('a', 7997)))"
            ),
            "7998"
        );
        assert_eq!(
            eval_err(
                "return select('#', struct.unpack(string.rep('b', 7998), string.rep('a', 7998)))"
            ),
            "user_script:1: stack overflow (too many results)"
        );
    }

    #[test]
    fn lualib_struct_round_trips_random_values() {
        let lua = vm();
        let mut rng = Rng::new(14);
        let fmts = [
            "<i4", ">i4", "<I2", ">h", "b", "B", "<l", ">L", "<d", ">d", "!8 d", "<i3", ">I7",
        ];
        for _ in 0..300 {
            let f = fmts[rng.below(fmts.len() as u64) as usize];
            let v: i64 = match f {
                "<I2" => rng.below(65536) as i64,
                "B" => rng.below(256) as i64,
                "b" => rng.below(256) as i64 - 128,
                ">h" => rng.below(65536) as i64 - 32768,
                "<i3" => rng.below(1 << 24) as i64 - (1 << 23),
                ">I7" => rng.below(1 << 52) as i64,
                "<l" | ">L" => (rng.next() >> 12) as i64 - (1 << 51),
                _ => rng.below(1 << 32) as i64 - (1 << 31),
            };
            let v = if f.ends_with('L') { v.abs() } else { v };
            let code = if f.contains('d') {
                format!(
                    "local s = struct.pack('{f}', {v}.25) local a, b = struct.unpack('{f}', s) return a == {v}.25 and b == #s + 1"
                )
            } else {
                format!(
                    "local s = struct.pack('{f}', {v}) local a, b = struct.unpack('{f}', s) return a == {v} and b == #s + 1"
                )
            };
            assert_eq!(eval_in(&lua, &code), "true", "{code}");
        }
    }

    #[test]
    fn lualib_struct_random_input_never_panics() {
        let lua = vm();
        let mut rng = Rng::new(7);
        let alphabet = b"bBhHlLTiIfdxcs<>! 0123456789z";
        let f = lua
            .load("return function(f, d) return pcall(struct.unpack, f, d) end")
            .eval::<mlua::Function>()
            .unwrap();
        let p = lua
            .load("return function(f, d) return pcall(struct.pack, f, d, d, 1, 2) end")
            .eval::<mlua::Function>()
            .unwrap();
        let s = lua
            .load("return function(f) return pcall(struct.size, f) end")
            .eval::<mlua::Function>()
            .unwrap();
        for _ in 0..2000 {
            let n = rng.below(12) as usize;
            let fmt: Vec<u8> = (0..n)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            let data = rng.bytes(64);
            let fs = lua.create_string(&fmt).unwrap();
            let ds = lua.create_string(&data).unwrap();
            let _: mlua::MultiValue = f.call((fs.clone(), ds.clone())).unwrap();
            let _: mlua::MultiValue = p.call((fs.clone(), ds)).unwrap();
            let _: mlua::MultiValue = s.call(fs).unwrap();
        }
    }
}
