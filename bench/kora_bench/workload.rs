//! What kora-bench sends: the command mix, the key distribution, and the
//! request encoding. Requests are written straight into a connection's
//! reusable output buffer; nothing here allocates per request.

use std::fmt;

/// Commands kora-bench knows how to send and how to check the reply of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ping,
    Set,
    Get,
    Incr,
    Lpush,
    Rpush,
    Lpop,
    Hset,
    Hget,
    Sadd,
    Mget,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Op::Ping,
        Op::Set,
        Op::Get,
        Op::Incr,
        Op::Lpush,
        Op::Rpush,
        Op::Lpop,
        Op::Hset,
        Op::Hget,
        Op::Sadd,
        Op::Mget,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Set => "set",
            Op::Get => "get",
            Op::Incr => "incr",
            Op::Lpush => "lpush",
            Op::Rpush => "rpush",
            Op::Lpop => "lpop",
            Op::Hset => "hset",
            Op::Hget => "hget",
            Op::Sadd => "sadd",
            Op::Mget => "mget",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// Each data type gets its own key prefix so that mixed workloads never
    /// run into WRONGTYPE, which would be counted as an error.
    fn key_prefix(self) -> &'static [u8] {
        match self {
            Op::Ping | Op::Set | Op::Get | Op::Mget => b"key:",
            Op::Incr => b"counter:",
            Op::Lpush | Op::Rpush | Op::Lpop => b"list:",
            Op::Hset | Op::Hget => b"hash:",
            Op::Sadd => b"set:",
        }
    }
}

/// Keys are `prefix` + the key number in 12 zero-padded digits, the shape
/// redis-benchmark gives `key:__rand_int__`, so both tools send equally long
/// keys.
pub const KEY_DIGITS: usize = 12;
pub const MAX_KEYSPACE: u64 = 1_000_000_000_000;

/// xoshiro256++: fast, small state, good enough statistics for load
/// generation; seeded through splitmix64 so that any u64 seed works.
#[derive(Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` without the modulo bias (Lemire's multiply-shift;
    /// the bias is below 2^-64 * n, far below anything measurable here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf over ranks 1..=n with P(k) ∝ 1/k^s, sampled by rejection-inversion
/// (Hörmann & Derflinger 1996, as in Apache Commons RNG): O(1) memory and
/// time for any keyspace, any s > 0, no table to precompute.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    pub fn new(n: u64, exponent: f64) -> Zipf {
        assert!(n >= 1 && exponent > 0.0);
        let mut z = Zipf {
            n: n as f64,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in 1..=n; rank 1 is the most frequent.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).clamp(1.0, self.n) as u64;
            let kf = k as f64;
            if kf - x <= self.s || u >= self.h_integral(kf + 0.5) - self.h(kf) {
                return k;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.exponent) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// ln(1+x)/x, accurate near 0 (where s is close to 1).
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x - 1)/x, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

#[derive(Clone, Debug)]
pub enum Distribution {
    Uniform,
    Zipf(Zipf),
}

impl Distribution {
    pub fn parse(text: &str, keyspace: u64) -> Result<Distribution, String> {
        if text == "uniform" {
            return Ok(Distribution::Uniform);
        }
        if let Some(s) = text.strip_prefix("zipf:") {
            let exponent: f64 = s.parse().map_err(|_| format!("bad zipf exponent {s:?}"))?;
            if !(exponent > 0.0 && exponent <= 10.0) {
                return Err(format!("zipf exponent must be in (0, 10], got {s}"));
            }
            return Ok(Distribution::Zipf(Zipf::new(keyspace, exponent)));
        }
        Err(format!(
            "distribution must be 'uniform' or 'zipf:S', got {text:?}"
        ))
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform => write!(f, "uniform"),
            Distribution::Zipf(z) => write!(f, "zipf:{}", z.exponent),
        }
    }
}

/// The weighted command mix, e.g. `set:1,get:10`.
#[derive(Clone, Debug)]
pub struct Mix {
    /// (op, cumulative weight), in the order given.
    entries: Vec<(Op, u64)>,
    total: u64,
}

impl Mix {
    /// `set:1,get:10`, or `incr,lpush` (weight 1 each).
    pub fn parse_commands(text: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once(':') {
                Some((n, w)) => (
                    n,
                    w.parse::<u64>()
                        .map_err(|_| format!("bad weight in {part:?}"))?,
                ),
                None => (part, 1),
            };
            let op = Op::parse(name).ok_or_else(|| {
                let known: Vec<_> = Op::ALL.iter().map(|o| o.name()).collect();
                format!("unknown command {name:?} (known: {})", known.join(", "))
            })?;
            if weights.iter().any(|(o, _)| *o == op) {
                return Err(format!("command {name:?} given twice"));
            }
            weights.push((op, weight));
        }
        Mix::from_weights(weights)
    }

    /// `--ratio S:G`: SET and GET weights.
    pub fn parse_ratio(text: &str) -> Result<Mix, String> {
        let (s, g) = text
            .split_once(':')
            .ok_or_else(|| format!("ratio must be SET:GET, e.g. 1:10, got {text:?}"))?;
        let parse = |w: &str| {
            w.parse::<u64>()
                .map_err(|_| format!("bad ratio weight {w:?}"))
        };
        Mix::from_weights(vec![(Op::Set, parse(s)?), (Op::Get, parse(g)?)])
    }

    fn from_weights(weights: Vec<(Op, u64)>) -> Result<Mix, String> {
        let mut total = 0u64;
        let mut entries = Vec::new();
        for (op, w) in weights {
            if w == 0 {
                continue;
            }
            total = total
                .checked_add(w)
                .filter(|t| *t <= u32::MAX as u64)
                .ok_or("weights too large")?;
            entries.push((op, total));
        }
        if entries.is_empty() {
            return Err("the command mix is empty (every weight is 0)".into());
        }
        Ok(Mix { entries, total })
    }

    pub fn ops(&self) -> impl Iterator<Item = Op> + '_ {
        self.entries.iter().map(|(op, _)| *op)
    }

    pub fn contains(&self, op: Op) -> bool {
        self.ops().any(|o| o == op)
    }

    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> Op {
        if self.entries.len() == 1 {
            return self.entries[0].0;
        }
        let r = rng.below(self.total);
        self.entries
            .iter()
            .find(|(_, cumulative)| r < *cumulative)
            .map_or(self.entries[0].0, |(op, _)| *op)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = 0;
        for (i, (op, cumulative)) in self.entries.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}:{}", op.name(), cumulative - previous)?;
            previous = *cumulative;
        }
        Ok(())
    }
}

/// Everything that decides the requests of a run.
#[derive(Clone, Debug)]
pub struct Workload {
    pub mix: Mix,
    pub keyspace: u64,
    pub distribution: Distribution,
    pub value_size: usize,
    pub mget_keys: u64,
    /// Mixed into every value, so that values left by an earlier run with
    /// another seed never pass verification.
    pub value_tag: [u8; 8],
    /// `value_size` filler bytes; each value is this with its key stamped in.
    template: Vec<u8>,
}

/// Bytes of a value that identify it: the key number's digits, least
/// significant first (so that even short values tell neighbouring keys
/// apart), then the run's tag.
const STAMP_LEN: usize = KEY_DIGITS + 8;

impl Workload {
    pub fn new(
        mix: Mix,
        keyspace: u64,
        distribution: Distribution,
        value_size: usize,
        mget_keys: u64,
        seed: u64,
    ) -> Workload {
        let mut value_tag = [0u8; 8];
        let folded = (seed ^ (seed >> 32)) as u32;
        for (i, b) in value_tag.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((folded >> (28 - 4 * i)) & 0xf) as usize];
        }
        Workload {
            mix,
            keyspace,
            distribution,
            value_size,
            mget_keys,
            value_tag,
            template: vec![b'x'; value_size],
        }
    }

    #[inline]
    pub fn key(&self, rng: &mut Rng) -> u64 {
        match &self.distribution {
            Distribution::Uniform => rng.below(self.keyspace),
            Distribution::Zipf(z) => z.sample(rng) - 1,
        }
    }

    /// The i-th key of an MGET that starts at `first`: consecutive numbers,
    /// wrapping at the keyspace end, so a request is described by one key.
    #[inline]
    pub fn mget_key(&self, first: u64, i: u64) -> u64 {
        (first + i) % self.keyspace
    }

    /// Writes the value kora-bench stores under key number `key`.
    pub fn write_value(&self, key: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.template);
        let stamp = &mut out[start..];
        let mut digits = key;
        for (i, b) in stamp.iter_mut().take(STAMP_LEN).enumerate() {
            *b = if i < KEY_DIGITS {
                let d = b'0' + (digits % 10) as u8;
                digits /= 10;
                d
            } else {
                self.value_tag[i - KEY_DIGITS]
            };
        }
    }

    /// Appends one request in RESP2. `key` is the sampled key number (the
    /// first key for MGET); `member` is SADD's member number.
    pub fn encode(&self, op: Op, key: u64, member: u64, out: &mut Vec<u8>) {
        match op {
            Op::Ping => out.extend_from_slice(b"*1\r\n$4\r\nPING\r\n"),
            Op::Set => {
                out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
                self.put_key(op, key, out);
                self.put_value(key, out);
            }
            Op::Get => {
                out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
                self.put_key(op, key, out);
            }
            Op::Incr => {
                out.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n");
                self.put_key(op, key, out);
            }
            Op::Lpush | Op::Rpush => {
                out.extend_from_slice(if op == Op::Lpush {
                    b"*3\r\n$5\r\nLPUSH\r\n"
                } else {
                    b"*3\r\n$5\r\nRPUSH\r\n"
                });
                self.put_key(op, key, out);
                self.put_value(key, out);
            }
            Op::Lpop => {
                out.extend_from_slice(b"*2\r\n$4\r\nLPOP\r\n");
                self.put_key(op, key, out);
            }
            Op::Hset => {
                out.extend_from_slice(b"*4\r\n$4\r\nHSET\r\n");
                self.put_key(op, key, out);
                out.extend_from_slice(b"$5\r\nfield\r\n");
                self.put_value(key, out);
            }
            Op::Hget => {
                out.extend_from_slice(b"*3\r\n$4\r\nHGET\r\n");
                self.put_key(op, key, out);
                out.extend_from_slice(b"$5\r\nfield\r\n");
            }
            Op::Sadd => {
                out.extend_from_slice(b"*3\r\n$4\r\nSADD\r\n");
                self.put_key(op, key, out);
                out.extend_from_slice(b"$12\r\n");
                put_digits(member, out);
                out.extend_from_slice(b"\r\n");
            }
            Op::Mget => {
                out.push(b'*');
                put_decimal(self.mget_keys + 1, out);
                out.extend_from_slice(b"\r\n$4\r\nMGET\r\n");
                for i in 0..self.mget_keys {
                    self.put_key(op, self.mget_key(key, i), out);
                }
            }
        }
    }

    fn put_key(&self, op: Op, key: u64, out: &mut Vec<u8>) {
        let prefix = op.key_prefix();
        out.push(b'$');
        put_decimal((prefix.len() + KEY_DIGITS) as u64, out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(prefix);
        put_digits(key, out);
        out.extend_from_slice(b"\r\n");
    }

    fn put_value(&self, key: u64, out: &mut Vec<u8>) {
        out.push(b'$');
        put_decimal(self.value_size as u64, out);
        out.extend_from_slice(b"\r\n");
        self.write_value(key, out);
        out.extend_from_slice(b"\r\n");
    }
}

/// `n` as exactly KEY_DIGITS zero-padded digits.
fn put_digits(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [b'0'; KEY_DIGITS];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
}

fn put_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(value_size: usize) -> Workload {
        Workload::new(
            Mix::parse_ratio("1:1").unwrap(),
            100,
            Distribution::Uniform,
            value_size,
            3,
            7,
        )
    }

    #[test]
    fn encodes_set_get_and_mget_as_resp() {
        let w = workload(24);
        let mut out = Vec::new();
        w.encode(Op::Set, 42, 0, &mut out);
        // Value: key 42's digits least significant first, the tag of seed 7,
        // then filler up to 24 bytes.
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$24\r\n24000000000000000007xxxx\r\n"
        );
        out.clear();
        w.encode(Op::Get, 42, 0, &mut out);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000042\r\n");
        out.clear();
        w.encode(Op::Mget, 99, 0, &mut out);
        assert_eq!(
            out,
            b"*4\r\n$4\r\nMGET\r\n$16\r\nkey:000000000099\r\n$16\r\nkey:000000000000\r\n$16\r\nkey:000000000001\r\n"
        );
    }

    #[test]
    fn short_values_still_tell_neighbouring_keys_apart() {
        let w = workload(3);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        w.write_value(41, &mut a);
        w.write_value(42, &mut b);
        assert_eq!(a, b"140");
        assert_eq!(b, b"240");
        let mut empty = Vec::new();
        workload(0).write_value(5, &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn seed_changes_the_values() {
        let other = Workload::new(
            Mix::parse_ratio("1:1").unwrap(),
            100,
            Distribution::Uniform,
            64,
            3,
            8,
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        workload(64).write_value(1, &mut a);
        other.write_value(1, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn mix_parsing() {
        let m = Mix::parse_commands("set:1, get:10,incr").unwrap();
        assert_eq!(m.to_string(), "set:1,get:10,incr:1");
        assert!(Mix::parse_commands("nope").is_err());
        assert!(Mix::parse_commands("get,get").is_err());
        assert!(Mix::parse_commands("get:0").is_err());
        assert_eq!(Mix::parse_ratio("0:1").unwrap().to_string(), "get:1");
        assert!(Mix::parse_ratio("1").is_err());
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 2];
        let m = Mix::parse_ratio("1:3").unwrap();
        for _ in 0..40_000 {
            counts[(m.pick(&mut rng) == Op::Get) as usize] += 1;
        }
        let share = counts[1] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "GET share {share}");
    }

    #[test]
    fn uniform_keys_cover_the_keyspace_evenly() {
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    /// Sampled frequencies of the first ranks match the exact Zipf pmf.
    fn check_zipf(n: u64, s: f64) {
        let z = Zipf::new(n, s);
        let mut rng = Rng::new(11);
        let samples = 400_000;
        let mut counts = [0u64; 6];
        for _ in 0..samples {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k));
            if k <= 5 {
                counts[k as usize] += 1;
            }
        }
        let norm: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        for k in 1..=n.min(5) {
            let expected = samples as f64 * (k as f64).powf(-s) / norm;
            let got = counts[k as usize] as f64;
            // 5 standard deviations of a binomial count.
            let tolerance = 5.0 * expected.sqrt() + 1.0;
            assert!(
                (got - expected).abs() < tolerance,
                "n={n} s={s} rank {k}: got {got}, expected {expected:.0}"
            );
        }
    }

    #[test]
    fn zipf_matches_the_exact_distribution() {
        check_zipf(1_000, 0.99);
        check_zipf(1_000, 1.0);
        check_zipf(100_000, 1.2);
        check_zipf(50, 0.5);
        check_zipf(1, 0.99);
    }

    #[test]
    fn same_seed_same_keys() {
        let z = Zipf::new(1000, 0.99);
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        for _ in 0..100 {
            assert_eq!(z.sample(&mut a), z.sample(&mut b));
        }
        assert_ne!(Rng::new(5).next_u64(), Rng::new(6).next_u64());
    }
}
