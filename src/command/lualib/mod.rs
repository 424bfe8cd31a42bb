//! The Lua libraries Redis 7.0 ships to scripts: `cjson`, `cmsgpack`, `bit`
//! and `struct`, written in Rust on mlua (Lua 5.1) and behaving like the C
//! modules redis-server 7.0.15 links (lua-cjson 2.1.0 as patched by Redis,
//! lua-cmsgpack 0.4.0, LuaBitOp, Roberto Ierusalimschy's struct 0.2):
//! same bytes out, same error texts, same limits.
//!
//! The scripting engine calls [`open`] once per script VM; it sets the four
//! globals. Each library lives in its own file; this file holds what they
//! share: the error convention, argument checks that mirror `lauxlib`, and
//! Lua 5.1's number <-> text conversions.
//!
//! Errors. The C modules raise plain string errors through `luaL_error`
//! (prefixed with the caller's `chunk:line:`) or `luaL_argerror`
//! (`bad argument #n to 'name' (...)`). An mlua callback can only raise a
//! wrapped Rust error (a userdata that a script's `pcall` would see instead
//! of a string), so every library function is a Rust callback that *returns*
//! a failure marker, wrapped in a tiny C closure ([`trampoline`]) that turns
//! the marker into the same Lua error the C module raises, from the same
//! stack level, so positions and function names match Redis.
//!
//! Stack limits. Lua 5.1 C functions may hold at most `LUAI_MAXCSTACK`
//! (8000) stack slots; the C modules stop deep nesting and huge result
//! lists with that limit (`lua_checkstack`). The Rust code keeps the same
//! slot count so the same inputs fail with the same message, which also
//! bounds recursion and result counts.

use std::cell::RefCell;
use std::ffi::c_int;
use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, Value, ffi};

pub(crate) mod bit;
pub(crate) mod cjson;
pub(crate) mod cmsgpack;
pub(crate) mod structlib;

#[cfg(test)]
pub(crate) mod testutil;

/// Lua 5.1's `LUAI_MAXCSTACK`: the most stack slots a C function may use.
pub(crate) const MAX_CSTACK: i64 = 8000;

/// Sets the globals `cjson`, `cmsgpack`, `bit` and `struct` in `lua`.
///
/// Raw sets, so it works whether or not the engine already protects the
/// global table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set("cjson", cjson::module(lua)?)?;
    g.raw_set("struct", structlib::module(lua)?)?;
    g.raw_set("cmsgpack", cmsgpack::module(lua)?)?;
    g.raw_set("bit", bit::module(lua)?)?;
    Ok(())
}

/// How a library function failed; [`trampoline`] raises it the way the C
/// module would.
#[derive(Debug)]
pub(crate) enum LibError {
    /// `luaL_error`: the message prefixed with the caller's position.
    Where(String),
    /// A runtime error raised below the C function (e.g. `lua_settable`'s
    /// "table index is nil"): no position.
    Plain(String),
    /// `luaL_argerror(n, msg)`: `bad argument #n to 'name' (msg)`.
    Arg(i32, String),
    /// An mlua failure (out of memory, ...), re-raised as is.
    Lua(mlua::Error),
}

impl From<mlua::Error> for LibError {
    fn from(e: mlua::Error) -> Self {
        LibError::Lua(e)
    }
}

pub(crate) type LibResult<T> = Result<T, LibError>;

/// Shorthand for a `luaL_error` failure.
pub(crate) fn fail<T>(msg: impl Into<String>) -> LibResult<T> {
    Err(LibError::Where(msg.into()))
}

/// Shorthand for a `luaL_argerror` failure.
pub(crate) fn arg_fail<T>(narg: i32, msg: impl Into<String>) -> LibResult<T> {
    Err(LibError::Arg(narg, msg.into()))
}

/// The marker a callback returns first to say "raise this".
static FAILURE: u8 = 0;
/// The marker a callback returns first to say "my results are the
/// elements 1..n of this table" (mlua cannot return thousands of values
/// from a callback; the C modules can, up to the stack limit).
static SPREAD: u8 = 0;

fn failure_ptr() -> *mut std::ffi::c_void {
    &FAILURE as *const u8 as *mut std::ffi::c_void
}

fn spread_ptr() -> *mut std::ffi::c_void {
    &SPREAD as *const u8 as *mut std::ffi::c_void
}

/// Results for a library function, held in `t[1..=n]` (a Lua table, as
/// mlua can hold only a few thousand Rust-side references): returned
/// directly when few, else spread onto the stack by the trampoline.
pub(crate) fn results(lua: &Lua, t: Table, n: usize) -> LibResult<MultiValue> {
    let _ = lua;
    if n <= 32 {
        let mut out = Vec::with_capacity(n);
        for i in 1..=n {
            out.push(t.raw_get::<Value>(i)?);
        }
        return Ok(MultiValue::from_vec(out));
    }
    Ok(MultiValue::from_vec(vec![
        Value::LightUserData(mlua::LightUserData(spread_ptr())),
        Value::Table(t),
        Value::Integer(n as i64),
    ]))
}

/// A growing result list kept in a Lua table (see [`results`]).
pub(crate) struct ResultList {
    t: Table,
    n: usize,
}

impl ResultList {
    pub(crate) fn new(lua: &Lua) -> mlua::Result<Self> {
        Ok(ResultList {
            t: lua.create_table()?,
            n: 0,
        })
    }
    pub(crate) fn len(&self) -> usize {
        self.n
    }
    pub(crate) fn push(&mut self, v: Value) -> mlua::Result<()> {
        self.n += 1;
        self.t.raw_set(self.n, v)
    }
    pub(crate) fn last(&self) -> mlua::Result<Value> {
        if self.n == 0 {
            Ok(Value::Nil)
        } else {
            self.t.raw_get(self.n)
        }
    }
    pub(crate) fn pop(&mut self) -> mlua::Result<()> {
        if self.n > 0 {
            self.t.raw_set(self.n, Value::Nil)?;
            self.n -= 1;
        }
        Ok(())
    }
    pub(crate) fn finish(self, lua: &Lua) -> LibResult<MultiValue> {
        results(lua, self.t, self.n)
    }
}

/// Calls the Rust callback (upvalue 1) with this call's arguments; if it
/// returned the failure marker, raises the error from this C frame so that
/// `luaL_where(L, 1)` and `luaL_argerror` see the script's call site and the
/// function's name exactly as for the C modules.
///
/// Nothing with a destructor is alive when `lua_error` long-jumps.
unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: standard Lua C API use on the running state; indices are
    // checked against `lua_gettop` before use.
    unsafe {
        let nargs = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        if ffi::lua_pcall(state, nargs, ffi::LUA_MULTRET, 0) != 0 {
            ffi::lua_error(state);
        }
        let n = ffi::lua_gettop(state);
        if n == 3
            && ffi::lua_type(state, 1) == ffi::LUA_TLIGHTUSERDATA
            && ffi::lua_touserdata(state, 1) == failure_ptr()
        {
            let kind = ffi::lua_tointeger(state, 2) as c_int;
            match kind {
                -1 => {
                    ffi::luaL_where(state, 1);
                    ffi::lua_pushvalue(state, 3);
                    ffi::lua_concat(state, 2);
                    ffi::lua_error(state);
                }
                -2 => {
                    ffi::lua_pushvalue(state, 3);
                    ffi::lua_error(state);
                }
                narg => {
                    let msg = ffi::lua_tolstring(state, 3, std::ptr::null_mut());
                    ffi::luaL_argerror(state, narg, msg);
                    0
                }
            }
        } else if n == 3
            && ffi::lua_type(state, 1) == ffi::LUA_TLIGHTUSERDATA
            && ffi::lua_touserdata(state, 1) == spread_ptr()
        {
            let count = ffi::lua_tointeger(state, 3) as c_int;
            ffi::lua_settop(state, 2);
            ffi::lua_replace(state, 1);
            if ffi::lua_checkstack(state, count) == 0 {
                ffi::luaL_error(state, c"stack overflow (too many results)".as_ptr());
            }
            for i in 1..=count {
                ffi::lua_rawgeti(state, 1, i.into());
            }
            count
        } else {
            n
        }
    }
}

/// Makes a library function: `f` runs with the call's arguments; its
/// failures become the Lua errors the C module raises.
pub(crate) fn make_fn<F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &[Value]) -> LibResult<MultiValue> + 'static,
{
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_vec();
        match f(lua, &args) {
            Ok(v) => Ok(v),
            Err(LibError::Lua(e)) => Err(e),
            Err(e) => {
                let (kind, msg) = match e {
                    LibError::Where(m) => (-1, m),
                    LibError::Plain(m) => (-2, m),
                    LibError::Arg(n, m) => (i64::from(n.max(0)), m),
                    LibError::Lua(_) => unreachable!("handled above"),
                };
                Ok(MultiValue::from_vec(vec![
                    Value::LightUserData(mlua::LightUserData(failure_ptr())),
                    Value::Integer(kind),
                    Value::String(lua.create_string(msg)?),
                ]))
            }
        }
    })?;
    // SAFETY: pushes a C closure over the callback; `trampoline` only uses
    // the Lua C API.
    unsafe { lua.exec_raw::<Function>(inner, |state| ffi::lua_pushcclosure(state, trampoline, 1)) }
}

/// Like [`make_fn`] for functions sharing a mutable state.
pub(crate) fn make_fn_with<S: 'static, F>(
    lua: &Lua,
    state: &Rc<RefCell<S>>,
    f: F,
) -> mlua::Result<Function>
where
    F: Fn(&Lua, &mut S, &[Value]) -> LibResult<MultiValue> + 'static,
{
    let state = Rc::clone(state);
    make_fn(lua, move |lua, args| {
        let mut s = state.borrow_mut();
        f(lua, &mut s, args)
    })
}

/// `lua_typename(lua_type(v))`.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) | Value::Error(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// `luaL_typename` of argument `i` (1-based), "no value" past the end.
pub(crate) fn arg_type_name(args: &[Value], i: usize) -> &'static str {
    match args.get(i - 1) {
        None => "no value",
        Some(v) => type_name(v),
    }
}

/// `luaL_typerror`.
pub(crate) fn type_error<T>(args: &[Value], i: usize, expected: &str) -> LibResult<T> {
    arg_fail(
        i as i32,
        format!("{expected} expected, got {}", arg_type_name(args, i)),
    )
}

/// `lua_tonumber`: numbers, and strings Lua 5.1 converts to numbers.
pub(crate) fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => str2number(&s.as_bytes()),
        _ => None,
    }
}

/// `luaL_checknumber(L, i)`.
pub(crate) fn check_number(args: &[Value], i: usize) -> LibResult<f64> {
    match args.get(i - 1).and_then(to_number) {
        Some(n) => Ok(n),
        None => type_error(args, i, "number"),
    }
}

/// Lua 5.1's `lua_number2integer` on x86-64: a truncating conversion that
/// yields `i64::MIN` when out of range (`cvttsd2si`).
pub(crate) fn number_to_integer(n: f64) -> i64 {
    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        n as i64
    } else {
        i64::MIN
    }
}

/// C's `(int)` conversion of a double on x86-64 (`cvttsd2si` 32-bit):
/// `i32::MIN` when out of range.
pub(crate) fn double_to_int(n: f64) -> i32 {
    if n.is_finite() && n > -2_147_483_649.0 && n < 2_147_483_648.0 {
        n as i32
    } else {
        i32::MIN
    }
}

/// `luaL_checkinteger(L, i)`.
pub(crate) fn check_integer(args: &[Value], i: usize) -> LibResult<i64> {
    let n = check_number(args, i)?;
    Ok(number_to_integer(n))
}

/// `luaL_optinteger(L, i, def)`.
pub(crate) fn opt_integer(args: &[Value], i: usize, def: i64) -> LibResult<i64> {
    match args.get(i - 1) {
        None | Some(Value::Nil) => Ok(def),
        _ => check_integer(args, i),
    }
}

/// `luaL_checklstring(L, i)`: strings, and numbers converted with `%.14g`.
pub(crate) fn check_string(lua: &Lua, args: &[Value], i: usize) -> LibResult<mlua::String> {
    match args.get(i - 1) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Integer(n)) => Ok(lua.create_string(fmt_g(*n as f64, 14))?),
        Some(Value::Number(n)) => Ok(lua.create_string(fmt_g(*n, 14))?),
        _ => type_error(args, i, "string"),
    }
}

/// A Lua number result (Lua 5.1 has only doubles; mlua hands integral ones
/// back to Rust as `Value::Integer`).
pub(crate) fn num(n: f64) -> Value {
    Value::Number(n)
}

/// C's `printf("%.{prec}g", n)` (glibc spelling: `inf`, `-inf`, `nan`,
/// `-nan`, two-digit exponents at least).
pub(crate) fn fmt_g(n: f64, prec: usize) -> String {
    let mut out = String::new();
    push_fmt_g(&mut out, n, prec);
    out
}

/// Appends `%.{prec}g` of `n` to `out`.
pub(crate) fn push_fmt_g(out: &mut String, n: f64, prec: usize) {
    use std::fmt::Write;
    if n.is_nan() {
        out.push_str(if n.is_sign_negative() { "-nan" } else { "nan" });
        return;
    }
    if n.is_infinite() {
        out.push_str(if n < 0.0 { "-inf" } else { "inf" });
        return;
    }
    let p = prec.max(1);
    // Scientific rendering with p significant digits gives the exponent
    // after rounding, which decides the style as C does.
    let sci = format!("{:.*e}", p - 1, n);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mant = trim_zeros(mant);
        let _ = write!(
            out,
            "{mant}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        let fixed = format!("{:.*}", decimals, n);
        out.push_str(trim_zeros(&fixed));
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        let t = s.trim_end_matches('0');
        t.strip_suffix('.').unwrap_or(t)
    } else {
        s
    }
}

/// C's `isspace` in the "C" locale.
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// glibc `strtod` on the bytes before the first NUL: the value and how many
/// bytes it consumed, or `None` when nothing converts. Accepts leading
/// space, a sign, decimal and hexadecimal (`0x`, with `p` exponents)
/// forms, `inf`/`infinity`/`nan`/`nan(...)` in any case.
pub(crate) fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    let s = &s[..end];
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let sign = |v: f64| if neg { -v } else { v };
    let rest = &s[i..];
    let starts = |word: &[u8]| {
        rest.get(..word.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(word))
    };
    if starts(b"inf") {
        let n = if starts(b"infinity") { 8 } else { 3 };
        return Some((sign(f64::INFINITY), i + n));
    }
    if starts(b"nan") {
        let mut n = 3;
        if rest.get(3) == Some(&b'(') {
            let mut j = 4;
            while j < rest.len() && (rest[j].is_ascii_alphanumeric() || rest[j] == b'_') {
                j += 1;
            }
            if rest.get(j) == Some(&b')') {
                n = j + 1;
            }
        }
        return Some((sign(f64::NAN), i + n));
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((v, n)) = parse_hex(&rest[2..]) {
            return Some((sign(v), i + 2 + n));
        }
        // "0x" without hex digits converts the "0".
        return Some((sign(0.0), i + 1));
    }
    // Decimal: digits [. digits] [e [sign] digits].
    let mut j = 0;
    let mut digits = 0;
    while j < rest.len() && rest[j].is_ascii_digit() {
        j += 1;
        digits += 1;
    }
    if j < rest.len() && rest[j] == b'.' {
        j += 1;
        while j < rest.len() && rest[j].is_ascii_digit() {
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if j < rest.len() && (rest[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < rest.len() && (rest[k] == b'+' || rest[k] == b'-') {
            k += 1;
        }
        if k < rest.len() && rest[k].is_ascii_digit() {
            while k < rest.len() && rest[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&rest[..j]).ok()?;
    // Rust's parser is correctly rounded like glibc's; it rejects a bare
    // trailing '.' or leading '.', which we normalise.
    let v: f64 = match text.parse() {
        Ok(v) => v,
        Err(_) => {
            let mut t = String::with_capacity(text.len() + 2);
            if text.starts_with('.') {
                t.push('0');
            }
            t.push_str(text);
            t = t.replacen(".e", ".0e", 1).replacen(".E", ".0E", 1);
            if t.ends_with('.') {
                t.push('0');
            }
            t.parse().ok()?
        }
    };
    Some((sign(v), i + j))
}

/// Hex digits `h[.h][p[sign]d]` after "0x": value and length.
fn parse_hex(s: &[u8]) -> Option<(f64, usize)> {
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut any = false;
    let mut sticky = false;
    let mut j = 0;
    let mut seen_dot = false;
    while j < s.len() {
        let c = s[j];
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b'.' if !seen_dot => {
                seen_dot = true;
                j += 1;
                continue;
            }
            _ => break,
        };
        any = true;
        if mant >> 59 == 0 {
            mant = (mant << 4) | d as u64;
            if seen_dot {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_dot {
                exp += 4;
            }
        }
        j += 1;
    }
    if !any {
        return None;
    }
    if j < s.len() && (s[j] | 0x20) == b'p' {
        let mut k = j + 1;
        let mut eneg = false;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            eneg = s[k] == b'-';
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            let mut e: i64 = 0;
            while k < s.len() && s[k].is_ascii_digit() {
                e = (e * 10 + (s[k] - b'0') as i64).min(100_000);
                k += 1;
            }
            exp += if eneg { -e } else { e };
            j = k;
        }
    }
    if sticky {
        mant |= 1;
    }
    // mant < 2^63 with a sticky bit: one rounding in the conversion to f64
    // then an exact scaling (except in the subnormal range).
    let v = (mant as f64) * 2f64.powi(exp.clamp(-2000, 2000) as i32);
    Some((v, j))
}

/// Lua 5.1's `luaO_str2d`: the whole string (bar surrounding space) must
/// be a number; C strings stop at NUL.
pub(crate) fn str2number(s: &[u8]) -> Option<f64> {
    let (v, n) = strtod(s)?;
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    let rest = &s[n..end];
    if rest.iter().all(|&c| is_space(c)) {
        Some(v)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lualib_fmt_g_matches_printf() {
        // Reference values: glibc printf("%.14g").
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.33333333333333"),
            (1e15, "1e+15"),
            (123456789012345.0, "1.2345678901234e+14"),
            (12345678901234.0, "12345678901234"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e300, "1e+300"),
            (-1.5e-7, "-1.5e-07"),
            (1e100, "1e+100"),
            (100.0, "100"),
            (99999999999999.9, "1e+14"),
        ];
        for (n, want) in cases {
            assert_eq!(fmt_g(*n, 14), *want, "{n}");
        }
        assert_eq!(fmt_g(12345.0, 3), "1.23e+04");
        assert_eq!(fmt_g(0.5, 1), "0.5");
    }

    #[test]
    fn lualib_strtod_forms() {
        assert_eq!(strtod(b"1.5e"), Some((1.5, 3)));
        assert_eq!(strtod(b"-"), None);
        assert_eq!(strtod(b"0x1F,"), Some((31.0, 4)));
        assert_eq!(strtod(b"0x"), Some((0.0, 1)));
        assert_eq!(strtod(b"0x1p3"), Some((8.0, 5)));
        assert_eq!(strtod(b"-Infinity"), Some((f64::NEG_INFINITY, 9)));
        assert_eq!(strtod(b"infx"), Some((f64::INFINITY, 3)));
        assert!(strtod(b"nan(12)").unwrap().0.is_nan());
        assert_eq!(strtod(b"nan(12)").unwrap().1, 7);
        assert_eq!(strtod(b"1."), Some((1.0, 2)));
        assert_eq!(strtod(b".5"), Some((0.5, 2)));
        assert_eq!(strtod(b"  12"), Some((12.0, 4)));
        assert_eq!(strtod(b"1e+"), Some((1.0, 1)));
        assert_eq!(str2number(b" 12  "), Some(12.0));
        assert_eq!(str2number(b"12x"), None);
        assert_eq!(str2number(b"0x10"), Some(16.0));
    }
}
