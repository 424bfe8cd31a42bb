//! `bit`: LuaBitOp's 32-bit operations as Redis ships them (Lua 5.1
//! numbers are doubles; every argument is normalised to 32 bits the way
//! LuaBitOp does: add 2^52+2^51 and keep the low word of the double, i.e.
//! round to nearest even and wrap modulo 2^32; results are signed 32-bit).
//! Unlike the other libraries these are raw Lua C functions, for speed.

use std::ffi::c_int;

use mlua::{Lua, Table, ffi};

// These are plain Lua C functions (no mlua callback, no trampoline):
// scripts call `bit` in tight loops, and the generic wrapper costs ~40 ns
// a call more than a C function. They touch only the Lua C API and hold no
// Rust value with a destructor, so a Lua error may long-jump out of them.

/// LuaBitOp's `barg`: the low 32 bits of `n + 2^52 + 2^51`; a non-number
/// is an error only when that yields 0 (Lua 5.1 build of LuaBitOp).
unsafe fn barg(state: *mut ffi::lua_State, i: c_int) -> u32 {
    // SAFETY: Lua C API on the running state.
    unsafe {
        let n = ffi::lua_tonumber(state, i);
        let b = (n + 6_755_399_441_055_744.0).to_bits() as u32;
        if b == 0 && ffi::lua_isnumber(state, i) == 0 {
            ffi::luaL_typerror(state, i, c"number".as_ptr());
        }
        b
    }
}

unsafe fn ret(state: *mut ffi::lua_State, b: u32) -> c_int {
    // SAFETY: Lua C API on the running state.
    unsafe { ffi::lua_pushnumber(state, f64::from(b as i32)) };
    1
}

macro_rules! unary {
    ($name:ident, $f:expr) => {
        unsafe extern "C-unwind" fn $name(state: *mut ffi::lua_State) -> c_int {
            let f: fn(u32) -> u32 = $f;
            // SAFETY: Lua C API on the running state.
            unsafe { ret(state, f(barg(state, 1))) }
        }
    };
}

// LuaBitOp folds from the last argument down, so the highest bad
// argument is the one reported.
macro_rules! fold {
    ($name:ident, $f:expr) => {
        unsafe extern "C-unwind" fn $name(state: *mut ffi::lua_State) -> c_int {
            let f: fn(u32, u32) -> u32 = $f;
            // SAFETY: Lua C API on the running state.
            unsafe {
                let mut b = barg(state, 1);
                let mut i = ffi::lua_gettop(state);
                while i > 1 {
                    b = f(b, barg(state, i));
                    i -= 1;
                }
                ret(state, b)
            }
        }
    };
}

macro_rules! shift {
    ($name:ident, $f:expr) => {
        unsafe extern "C-unwind" fn $name(state: *mut ffi::lua_State) -> c_int {
            let f: fn(u32, u32) -> u32 = $f;
            // SAFETY: Lua C API on the running state.
            unsafe {
                let b = barg(state, 1);
                let n = barg(state, 2) & 31;
                ret(state, f(b, n))
            }
        }
    };
}

unary!(tobit, |b| b);
unary!(bnot, |b| !b);
unary!(bswap, u32::swap_bytes);
fold!(band, |a, b| a & b);
fold!(bor, |a, b| a | b);
fold!(bxor, |a, b| a ^ b);
shift!(lshift, |b, n| b << n);
shift!(rshift, |b, n| b >> n);
shift!(arshift, |b, n| ((b as i32) >> n) as u32);
shift!(rol, u32::rotate_left);
shift!(ror, u32::rotate_right);

unsafe extern "C-unwind" fn tohex(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua C API on the running state.
    unsafe {
        let mut b = barg(state, 1);
        let mut n: i32 = if ffi::lua_isnone(state, 2) != 0 {
            8
        } else {
            barg(state, 2) as i32
        };
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
        ffi::lua_pushlstring(state, buf.as_ptr().cast(), n);
        1
    }
}

/// Builds the `bit` table.
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let fns: [(&str, ffi::lua_CFunction); 12] = [
        ("tobit", tobit),
        ("bnot", bnot),
        ("band", band),
        ("bor", bor),
        ("bxor", bxor),
        ("lshift", lshift),
        ("rshift", rshift),
        ("arshift", arshift),
        ("rol", rol),
        ("ror", ror),
        ("bswap", bswap),
        ("tohex", tohex),
    ];
    for (name, f) in fns {
        // SAFETY: each function only uses the Lua C API (see above).
        t.raw_set(name, unsafe { lua.create_c_function(f)? })?;
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
