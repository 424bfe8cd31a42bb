//! `bit`: LuaBitOp's 32-bit operations as Redis ships them (Lua 5.1
//! numbers are doubles; every argument is normalised to 32 bits the way
//! LuaBitOp does: add 2^52+2^51 and keep the low word of the double, i.e.
//! round to nearest even and wrap modulo 2^32; results are signed 32-bit).

use mlua::{Lua, MultiValue, Table, Value};

use super::{LibResult, make_fn, num, to_number, type_error};

/// LuaBitOp's `barg`: the low 32 bits of `n + 2^52 + 2^51`; a non-number
/// is an error only when that yields 0 (Lua 5.1 build of LuaBitOp).
fn barg(args: &[Value], i: usize) -> LibResult<u32> {
    let n = args.get(i - 1).and_then(to_number);
    let b = (n.unwrap_or(0.0) + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && n.is_none() {
        return type_error(args, i, "number");
    }
    Ok(b)
}

fn ret(b: u32) -> LibResult<MultiValue> {
    Ok(MultiValue::from_vec(vec![num(b as i32 as f64)]))
}

type Op = fn(u32, u32) -> u32;

/// Builds the `bit` table.
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("tobit", make_fn(lua, |_, a| ret(barg(a, 1)?))?)?;
    t.raw_set("bnot", make_fn(lua, |_, a| ret(!barg(a, 1)?))?)?;
    t.raw_set("bswap", make_fn(lua, |_, a| ret(barg(a, 1)?.swap_bytes()))?)?;
    t.raw_set(
        "tohex",
        make_fn(lua, |lua, a| {
            let mut b = barg(a, 1)?;
            let mut n: i32 = if a.len() < 2 { 8 } else { barg(a, 2)? as i32 };
            let digits: &[u8; 16] = if n < 0 {
                // Redis's LuaBitOp guards -INT32_MIN.
                n = if n == i32::MIN { i32::MAX } else { -n };
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let n = n.min(8) as usize;
            let mut buf = [0u8; 8];
            for slot in buf[..n].iter_mut().rev() {
                *slot = digits[(b & 15) as usize];
                b >>= 4;
            }
            Ok(MultiValue::from_vec(vec![Value::String(
                lua.create_string(&buf[..n])?,
            )]))
        })?,
    )?;
    let variadic: [(&str, Op); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in variadic {
        t.raw_set(
            name,
            make_fn(lua, move |_, a| {
                // LuaBitOp folds from the last argument down, so the
                // highest bad argument is the one reported.
                let mut b = barg(a, 1)?;
                for i in (2..=a.len()).rev() {
                    b = op(b, barg(a, i)?);
                }
                ret(b)
            })?,
        )?;
    }
    let shifts: [(&str, Op); 5] = [
        ("lshift", |b, n| b << n),
        ("rshift", |b, n| b >> n),
        ("arshift", |b, n| ((b as i32) >> n) as u32),
        ("rol", |b, n| b.rotate_left(n)),
        ("ror", |b, n| b.rotate_right(n)),
    ];
    for (name, op) in shifts {
        t.raw_set(
            name,
            make_fn(lua, move |_, a| {
                let b = barg(a, 1)?;
                let n = barg(a, 2)? & 31;
                ret(op(b, n))
            })?,
        )?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{eval, eval_err};

    // Every expected value below is redis-server 7.0.15's reply to
    // `EVAL "return <snippet>" 0`, run on 2026-11-30 (integer replies are
    // Lua numbers truncated by Redis; here we compare the Lua values).
    #[test]
    fn lualib_bit_matches_redis() {
        assert_eq!(
            eval(
                "return {bit.tobit(2^32+5), bit.tobit(-1), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-2.5), \
                 bit.tobit(0/0), bit.tobit(1/0), bit.tobit(2^53+3), bit.tobit('12'), bit.tobit(0xffffffff)}"
            ),
            "{5,-1,2,2,-2,0,0,2,12,-1}"
        );
        assert_eq!(
            eval(
                "return {bit.tohex(255), bit.tohex(-1), bit.tohex(255, 2), bit.tohex(255, -4), bit.tohex(255, 12), \
                 bit.tohex(0x12345678, 0), bit.tohex(1, -100), bit.tohex(1, -2^31)}"
            ),
            r#"{"000000ff","ffffffff","ff","00FF","000000ff","","00000001","00000001"}"#
        );
        assert_eq!(
            eval(
                "return {bit.bnot(0), bit.band(0xff, 0x0f, 0x3), bit.bor(1,2,4), bit.bxor(5,3), bit.lshift(1, 31), \
                 bit.lshift(1, 32), bit.lshift(1,33), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.rol(0x80000001, 1), \
                 bit.ror(1, 1), bit.bswap(0x12345678), bit.band(5)}"
            ),
            "{-1,3,7,6,-2147483648,1,2,15,-16,3,-2147483648,2018915346,5}"
        );
    }

    #[test]
    fn lualib_bit_errors_match_redis() {
        // redis-server 7.0.15: "ERR user_script:1: bad argument #1 to 'tobit' (number expected, got string) ..."
        assert_eq!(
            eval_err("return bit.tobit('x')"),
            "user_script:1: bad argument #1 to 'tobit' (number expected, got string)"
        );
        assert_eq!(
            eval_err("return bit.band()"),
            "user_script:1: bad argument #1 to 'band' (number expected, got no value)"
        );
        assert_eq!(
            eval_err("return bit.band(1, 'x', {})"),
            "user_script:1: bad argument #3 to 'band' (number expected, got table)"
        );
        assert_eq!(
            eval_err("return bit.lshift(1)"),
            "user_script:1: bad argument #2 to 'lshift' (number expected, got no value)"
        );
        assert_eq!(
            eval_err("return bit.tohex(1, 'z')"),
            "user_script:1: bad argument #2 to 'tohex' (number expected, got string)"
        );
        // Through pcall the caller is a C function: no position, like Redis.
        assert_eq!(
            eval("local ok, e = pcall(bit.tobit) return {ok, type(e), e}"),
            r#"{false,"string","bad argument #1 to '?' (number expected, got no value)"}"#
        );
    }
}
