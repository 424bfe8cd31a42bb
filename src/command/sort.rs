//! SORT and SORT_RO, with Redis 7.0's options, replies and errors: BY
//! pattern (a pattern without `*` means no sorting), GET pattern (`#`
//! for the element itself, `key*->field` for a hash field), LIMIT, ASC /
//! DESC, ALPHA and (SORT only) STORE, on lists, sets and sorted sets.
//!
//! The keys BY and GET name are made from the elements, so they are known
//! only once the source has been read, and they may live on any shard.
//! SORT is therefore a connection command that reaches the shards through
//! the coordination layer, in steps: read the source on its shard, fetch
//! the BY weights from their shards, sort on the connection's core, fetch
//! the GET values for the elements in the LIMIT window, then reply or
//! store the list on the destination's shard. So that no client sees a
//! half-done SORT (a weight changing between two reads, a STORE landing
//! after a later write), the steps run under one hold: with no pattern
//! lookup, an [`Atomic`] over the source and destination keys; with
//! lookups (and more than one shard), every shard is locked for the
//! command's id in ascending order, as `coord::all_at_once` and EXEC lock
//! them. Inside EXEC the transaction already holds every shard (SORT is a
//! connection command, which involves them all).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

use super::Args;
use super::conn::Flow;
use super::keys::SHARD_GONE;
use crate::coord::{Atomic, Shard};
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::{Ttl, Value};

const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// The parsed options of one SORT.
#[derive(Clone, Debug, Default)]
struct Opts {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    /// The BY pattern, when it has a `*` (one without means no sorting).
    by: Option<Vec<u8>>,
    dontsort: bool,
    gets: Vec<Vec<u8>>,
    store: Option<Vec<u8>>,
}

/// As Redis' `sortCommandGeneric` parses them; SORT_RO does not know
/// STORE (a syntax error).
fn parse(args: &Args, readonly: bool, cluster: bool) -> Result<Opts, &'static str> {
    let mut o = Opts {
        limit_count: -1,
        ..Opts::default()
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        if args.is(j, "ASC") {
            o.desc = false;
        } else if args.is(j, "DESC") {
            o.desc = true;
        } else if args.is(j, "ALPHA") {
            o.alpha = true;
        } else if args.is(j, "LIMIT") && left >= 2 {
            o.limit_start = parse_i64(args.get(j + 1)).ok_or(err::NOT_INTEGER)?;
            o.limit_count = parse_i64(args.get(j + 2)).ok_or(err::NOT_INTEGER)?;
            j += 2;
        } else if !readonly && args.is(j, "STORE") && left >= 1 {
            o.store = Some(args.get(j + 1).to_vec());
            j += 1;
        } else if args.is(j, "BY") && left >= 1 {
            let pattern = args.get(j + 1);
            // As Redis: once a BY without `*` was seen, a later BY with
            // one does not sort again.
            if pattern.contains(&b'*') {
                // Cluster mode: the keys a pattern names may be anywhere.
                if cluster {
                    return Err("ERR BY option of SORT denied in Cluster mode.");
                }
                o.by = Some(pattern.to_vec());
            } else {
                o.by = None;
                o.dontsort = true;
            }
            j += 1;
        } else if args.is(j, "GET") && left >= 1 {
            if cluster {
                return Err("ERR GET option of SORT denied in Cluster mode.");
            }
            o.gets.push(args.get(j + 1).to_vec());
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// What a pattern names for one element: the element itself (`#`), a
/// key's string value, a hash field, or nothing (no `*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Lookup {
    Itself,
    Key(Vec<u8>),
    Field(Vec<u8>, Vec<u8>),
    Nothing,
}

/// Redis' `lookupKeyByPattern`: the first `*` takes the element, and a
/// `->` after it (followed by a field name) reads a hash field.
fn lookup_of(pattern: &[u8], elem: &[u8]) -> Lookup {
    if pattern == b"#" {
        return Lookup::Itself;
    }
    let Some(star) = pattern.iter().position(|&b| b == b'*') else {
        return Lookup::Nothing;
    };
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&at| at + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(at) => (&after[..at], Some(&after[at + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(star + elem.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(postfix);
    match field {
        Some(f) => Lookup::Field(key, f.to_vec()),
        None => Lookup::Key(key),
    }
}

/// Whether a pattern may name a key (so SORT must hold every shard).
fn names_keys(pattern: &[u8]) -> bool {
    pattern != b"#" && pattern.contains(&b'*')
}

/// The source as read on its shard.
enum Source {
    Wrong,
    /// Its elements in their order, and whether it is a set.
    Elems(Vec<Box<[u8]>>, bool),
}

/// How the steps reach the shards: under the command's own key locks, or
/// with every shard held (locked by this command, or by EXEC).
enum Hold<'s> {
    Keys(Atomic<'s>),
    All,
}

impl Hold<'_> {
    async fn on<R, F>(&mut self, shard: &Shard, target: usize, op: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shard) -> R + Send + 'static,
    {
        match self {
            Hold::Keys(atomic) => atomic.on(target, op).await,
            Hold::All => crate::coord::on(shard, target, op).await,
        }
    }
}

conn_async!(sort, |shard, client, args, out| {
    run(shard, client.info.id, args, false, out).await;
    Flow::Continue
});

conn_async!(sort_ro, |shard, client, args, out| {
    run(shard, client.info.id, args, true, out).await;
    Flow::Continue
});

async fn run(shard: &Rc<Shard>, tx: u64, args: &Args<'_>, readonly: bool, out: &mut Vec<u8>) {
    let o = match parse(args, readonly, shard.cluster_enabled()) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    let src = args.get(1).to_vec();
    // SORT has Redis' denyoom flag (SORT_RO does not): refused on shards
    // over their memory budget, as the connection refuses keyed denyoom
    // commands. Inside EXEC the transaction was checked whole.
    if !readonly && !shard.in_transaction() {
        let mut owners = vec![shard.owner(&src)];
        owners.extend(o.store.as_deref().map(|d| shard.owner(d)));
        owners.dedup();
        if !crate::coord::room_for_write(shard, &owners).await {
            return out.error(crate::store::evict::OOM);
        }
    }
    let lookups = o.by.is_some() || o.gets.iter().any(|g| names_keys(g));
    if !lookups || shard.nshards() == 1 {
        let keys = std::iter::once(&src[..]).chain(o.store.as_deref());
        let hold = Hold::Keys(Atomic::new(shard, tx, keys));
        return steps(shard, hold, src, o, out).await;
    }
    if shard.in_transaction() {
        return steps(shard, Hold::All, src, o, out).await;
    }
    let every: Vec<usize> = (0..shard.nshards()).collect();
    if !shard.lock_shards(tx, &every).await {
        return out.error(SHARD_GONE);
    }
    let fut = steps(shard, Hold::All, src, o, out);
    let mut fut = std::pin::pin!(fut);
    shard.with_tx(tx, fut.as_mut()).await;
    shard.unlock_shards(tx, &every).await;
}

/// A value a GET or ALPHA BY pattern found, shared by every element whose
/// pattern names the same key (and field): a key named for each of 10k
/// elements is copied across cores once, not 10k times.
type Found = Option<Rc<[u8]>>;

/// Runs `lookups` (one per element, in order) on the shards owning their
/// keys, reading each value found with `read` there; one result per
/// lookup (None: no such key, wrong type, no field). Each shard reads a
/// key (and field) once however many lookups name it, and ships that one
/// result; `local` turns it into what the caller keeps (an `Rc` shared by
/// those lookups).
async fn fetch<T, L, R>(
    shard: &Shard,
    hold: &mut Hold<'_>,
    lookups: Vec<Lookup>,
    elems: &[&[u8]],
    read: R,
    local: impl Fn(T) -> L,
) -> Option<Vec<Option<L>>>
where
    T: Send + 'static,
    L: Clone,
    R: Fn(&[u8]) -> T + Send + Clone + 'static,
{
    let mut values: Vec<Option<L>> = vec![None; lookups.len()];
    let mut per_shard: Vec<Vec<(usize, Lookup)>> = vec![Vec::new(); shard.nshards()];
    for (i, l) in lookups.into_iter().enumerate() {
        match &l {
            Lookup::Itself => values[i] = Some(local(read(elems[i]))),
            Lookup::Nothing => {}
            Lookup::Key(k) | Lookup::Field(k, _) => per_shard[shard.owner(k)].push((i, l)),
        }
    }
    for (target, wanted) in per_shard.into_iter().enumerate() {
        if wanted.is_empty() {
            continue;
        }
        let read = read.clone();
        let (found, refs) = hold
            .on(shard, target, move |s: &Shard| {
                let mut db = s.db();
                let mut found: Vec<T> = Vec::new();
                let mut seen: HashMap<&Lookup, Option<u32>> = HashMap::new();
                let mut refs: Vec<(usize, u32)> = Vec::with_capacity(wanted.len());
                for (i, l) in &wanted {
                    let at = *seen.entry(l).or_insert_with(|| {
                        let v = match (l, db.get(key_of(l))) {
                            (Lookup::Key(_), Some(Value::Str(s))) => Some(read(s.as_bytes())),
                            (Lookup::Field(_, f), Some(Value::Hash(h))) => h.get(f).map(&read),
                            _ => None,
                        };
                        v.map(|v| {
                            found.push(v);
                            found.len() as u32 - 1
                        })
                    });
                    if let Some(at) = at {
                        refs.push((*i, at));
                    }
                }
                (found, refs)
            })
            .await?;
        let found: Vec<L> = found.into_iter().map(&local).collect();
        for (i, at) in refs {
            values[i] = Some(found[at as usize].clone());
        }
    }
    Some(values)
}

/// [`fetch`] of values whose bytes the caller keeps (GET, ALPHA BY).
async fn fetch_bytes(
    shard: &Shard,
    hold: &mut Hold<'_>,
    lookups: Vec<Lookup>,
    elems: &[&[u8]],
) -> Option<Vec<Found>> {
    fn copy(b: &[u8]) -> Box<[u8]> {
        b.into()
    }
    fetch(shard, hold, lookups, elems, copy, Rc::<[u8]>::from).await
}

fn key_of(l: &Lookup) -> &[u8] {
    match l {
        Lookup::Key(k) | Lookup::Field(k, _) => k,
        _ => b"",
    }
}

/// `strtod` as SORT reads a weight: leading spaces skipped, the whole
/// rest a number (an empty string is 0); out of range or NaN is an error.
/// The same reader as sorted-set scores (hex floats included).
fn score_of(bytes: &[u8]) -> Option<f64> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    start.map_or(Some(0.0), |i| {
        crate::protocol::float::parse_f64(&bytes[i..])
    })
}

async fn steps(shard: &Shard, mut hold: Hold<'_>, src: Vec<u8>, mut o: Opts, out: &mut Vec<u8>) {
    let from = shard.owner(&src);
    let read = hold
        .on(shard, from, move |s: &Shard| {
            let mut db = s.db();
            match db.get(&src) {
                None => Source::Elems(Vec::new(), false),
                Some(Value::List(l)) => Source::Elems(l.iter().map(Box::from).collect(), false),
                Some(Value::Set(set)) => {
                    Source::Elems(set.iter().map(|m| Box::from(&*m)).collect(), true)
                }
                // In score order: what BY nosort keeps (DESC reverses).
                Some(Value::ZSet(z)) => {
                    Source::Elems(z.iter().map(|(m, _)| Box::from(m)).collect(), false)
                }
                Some(_) => Source::Wrong,
            }
        })
        .await;
    let (mut elems, is_set) = match read {
        None => return out.error(SHARD_GONE),
        Some(Source::Wrong) => return out.error(err::WRONGTYPE),
        Some(Source::Elems(e, s)) => (e, s),
    };
    // As Redis: an unsorted set is sorted anyway when stored, so that the
    // stored list does not depend on the set's internal order.
    if o.dontsort && is_set && o.store.is_some() {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = elems.len() as i64;
    let mut start = o.limit_start.max(0);
    let mut end = if o.limit_count < 0 {
        len - 1
    } else {
        start.saturating_add(o.limit_count) - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    if o.dontsort && !is_set && o.desc {
        elems.reverse();
    }
    let mut failed = false;
    if !o.dontsort {
        // Weights: the BY values, else the elements themselves. A numeric
        // BY ships each weight as its score (read on its shard), an ALPHA
        // one its bytes.
        let mut scores: Vec<Option<Option<f64>>> = Vec::new();
        let mut weights: Vec<Found> = Vec::new();
        if let Some(pattern) = &o.by {
            let refs: Vec<&[u8]> = elems.iter().map(|e| &e[..]).collect();
            let lookups = refs.iter().map(|e| lookup_of(pattern, e)).collect();
            let fetched = if o.alpha {
                fetch_bytes(shard, &mut hold, lookups, &refs)
                    .await
                    .map(|w| weights = w)
            } else {
                fetch(shard, &mut hold, lookups, &refs, score_of, |s| s)
                    .await
                    .map(|w| scores = w)
            };
            if fetched.is_none() {
                return out.error(SHARD_GONE);
            }
        }
        let mut keyed: Vec<(usize, f64)> = Vec::with_capacity(elems.len());
        for (i, e) in elems.iter().enumerate() {
            let score = if o.alpha {
                0.0
            } else {
                let w = match &o.by {
                    // A missing weight key sorts as 0.
                    Some(_) => scores[i].unwrap_or(Some(0.0)),
                    None => score_of(e),
                };
                w.unwrap_or_else(|| {
                    failed = true;
                    0.0
                })
            };
            keyed.push((i, score));
        }
        let by = o.by.is_some();
        keyed.sort_by(|&(a, sa), &(b, sb)| {
            let cmp = if !o.alpha {
                sa.partial_cmp(&sb)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| elems[a].cmp(&elems[b]))
            } else if by {
                match (&weights[a], &weights[b]) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                elems[a].cmp(&elems[b])
            };
            if o.desc { cmp.reverse() } else { cmp }
        });
        let mut sorted: Vec<Box<[u8]>> = Vec::with_capacity(elems.len());
        let mut taken: Vec<Option<Box<[u8]>>> = elems.into_iter().map(Some).collect();
        for (i, _) in keyed {
            sorted.push(taken[i].take().expect("each index once"));
        }
        elems = sorted;
    }
    if failed {
        return out.error(NOT_DOUBLE);
    }
    let window: &[Box<[u8]>] = if end >= start && start >= 0 {
        &elems[start as usize..=end as usize]
    } else {
        &[]
    };
    // The GET values of the window, pattern by pattern.
    let mut columns: Vec<Vec<Found>> = Vec::with_capacity(o.gets.len());
    let refs: Vec<&[u8]> = window.iter().map(|e| &e[..]).collect();
    for pattern in &o.gets {
        let lookups = refs.iter().map(|e| lookup_of(pattern, e)).collect();
        match fetch_bytes(shard, &mut hold, lookups, &refs).await {
            Some(c) => columns.push(c),
            None => return out.error(SHARD_GONE),
        }
    }
    let rows = window.len();
    let Some(dest) = o.store else {
        if columns.is_empty() {
            out.array(rows);
            for e in window {
                out.bulk(e);
            }
        } else {
            out.array(rows * columns.len());
            for r in 0..rows {
                for c in &columns {
                    match &c[r] {
                        Some(v) => out.bulk(v),
                        None => out.nil(),
                    }
                }
            }
        }
        return;
    };
    let mut result: Vec<Box<[u8]>> = Vec::with_capacity(rows * columns.len().max(1));
    if columns.is_empty() {
        result.extend(window.iter().cloned());
    } else {
        for r in 0..rows {
            for c in &columns {
                result.push(c[r].as_deref().map(Box::from).unwrap_or_default());
            }
        }
    }
    let n = result.len();
    let to = shard.owner(&dest);
    let stored = hold
        .on(shard, to, move |s: &Shard| {
            let mut db = s.db();
            if result.is_empty() {
                db.delete(&dest);
                return;
            }
            let limits = db.limits;
            let mut list = crate::store::List::default();
            for e in &result {
                list.push_back(e, &limits);
            }
            db.set(&dest, Value::List(Box::new(list)), Ttl::Clear);
        })
        .await;
    match stored {
        Some(()) => out.int(n as i64),
        None => out.error(SHARD_GONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_substitute_the_first_star() {
        assert_eq!(lookup_of(b"#", b"x"), Lookup::Itself);
        assert_eq!(lookup_of(b"nostar", b"x"), Lookup::Nothing);
        assert_eq!(lookup_of(b"w_*", b"3"), Lookup::Key(b"w_3".to_vec()));
        assert_eq!(lookup_of(b"w_*_*", b"3"), Lookup::Key(b"w_3_*".to_vec()));
        assert_eq!(
            lookup_of(b"h_*->f", b"3"),
            Lookup::Field(b"h_3".to_vec(), b"f".to_vec())
        );
        // An arrow with no field name is part of the key.
        assert_eq!(lookup_of(b"h_*->", b"3"), Lookup::Key(b"h_3->".to_vec()));
    }

    #[test]
    fn weights_read_as_strtod() {
        assert_eq!(score_of(b""), Some(0.0));
        assert_eq!(score_of(b" 1.5"), Some(1.5));
        assert_eq!(score_of(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(score_of(b"1e400"), None);
        assert_eq!(score_of(b"nan"), None);
        assert_eq!(score_of(b"1x"), None);
    }
}
