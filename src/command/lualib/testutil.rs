//! Test helpers: a Lua 5.1 VM with the libraries opened, a chunk runner, and
//! a canonical rendering of results so tests compare against the values
//! redis-server 7.0.15 returned for the same snippets.

use mlua::{Lua, MultiValue, Value};

use super::{fmt_g, open};

/// A fresh VM with the four libraries (plus the standard ones Redis loads).
pub(crate) fn vm() -> Lua {
    let lua = Lua::new();
    open(&lua).expect("open lualib");
    lua
}

/// Runs `code` as chunk `@user_script` (Redis's chunk name, so error
/// positions read `user_script:1:` as in Redis) in a fresh VM and renders
/// what it returns.
pub(crate) fn eval(code: &str) -> String {
    eval_in(&vm(), code)
}

/// Like [`eval`] in a given VM.
pub(crate) fn eval_in(lua: &Lua, code: &str) -> String {
    let r: MultiValue = match lua.load(code).set_name("@user_script").call(()) {
        Ok(r) => r,
        Err(e) => panic!("script failed: {e}\n{code}"),
    };
    r.iter().map(render).collect::<Vec<_>>().join(" ")
}

/// Runs `code`, which must fail, and returns the error text.
pub(crate) fn eval_err(code: &str) -> String {
    eval_err_in(&vm(), code)
}

/// Like [`eval_err`] in a given VM.
pub(crate) fn eval_err_in(lua: &Lua, code: &str) -> String {
    match lua
        .load(code)
        .set_name("@user_script")
        .call::<MultiValue>(())
    {
        Ok(r) => panic!(
            "expected an error, got {:?}",
            r.iter().map(render).collect::<Vec<_>>()
        ),
        // mlua appends a traceback; Redis's reply carries the message only.
        Err(mlua::Error::RuntimeError(m)) => m
            .split("\nstack traceback:")
            .next()
            .unwrap_or("")
            .to_string(),
        Err(e) => format!("{e}"),
    }
}

/// A stable text form: numbers as Lua prints them, strings quoted with
/// non-printable bytes as `\xNN`, tables as `{array...}` then sorted
/// `[k]=v` pairs.
pub(crate) fn render(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => fmt_g(*i as f64, 14),
        Value::Number(n) => fmt_g(*n, 14),
        Value::String(s) => quote(&s.as_bytes()),
        Value::LightUserData(p) if p.0.is_null() => "null".into(),
        Value::Table(t) => {
            let n = t.raw_len();
            let mut parts: Vec<String> = (1..=n)
                .map(|i| render(&t.raw_get::<Value>(i).unwrap_or(Value::Nil)))
                .collect();
            let mut rest: Vec<String> = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair.expect("pair");
                let in_array = matches!(k, Value::Integer(i) if i >= 1 && (i as usize) <= n);
                if !in_array {
                    rest.push(format!("[{}]={}", render(&k), render(&v)));
                }
            }
            rest.sort();
            parts.extend(rest);
            format!("{{{}}}", parts.join(","))
        }
        other => format!("<{}>", super::type_name(other)),
    }
}

fn quote(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// A small seeded generator (xorshift64*) for the randomized tests.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max as u64 + 1) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}
