//! Geo commands of issue 13: GEOADD, GEODIST, GEOHASH, GEOPOS, GEOSEARCH,
//! GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and their `_RO` forms.
//!
//! As in Redis, a geo index is a plain sorted set whose scores are 52-bit
//! geohashes (`store::geohash` has the arithmetic); these handlers
//! parse the arguments in Redis 7.0's order (so the same bad input gets the
//! same error), walk the score ranges of the nine search boxes with the
//! sorted set's range API, and write Redis's reply formats.
//!
//! The storing forms (GEOSEARCHSTORE, GEORADIUS… STORE/STOREDIST) are
//! multi-key: `whole` handlers when source and destination live on one
//! shard, and a `spread` driver otherwise, which searches on the source's
//! shard and installs the result on the destination's inside one
//! [`Atomic`] step.

use std::borrow::Cow;

use super::Args;
use super::keys::SHARD_GONE;
use crate::coord::{Atomic, Shard};
use crate::protocol::float::parse_f64;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{FLOAT_TEXT, Resp, err};
use crate::store::geohash::{self, Shape, ShapeKind};
use crate::store::zset::{Range, ScoreBound, ZSet};
use crate::store::{Db, Value};

const BAD_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const BAD_MEMBER: &str = "ERR could not decode requested zset member";
const NEED_RADIUS: &str = "ERR need numeric radius";
const NEED_WIDTH: &str = "ERR need numeric width";
const NEED_HEIGHT: &str = "ERR need numeric height";
const NEG_RADIUS: &str = "ERR radius cannot be negative";
const NEG_BOX: &str = "ERR height or width cannot be negative";
const COUNT_POSITIVE: &str = "ERR COUNT must be > 0";
const ANY_NEEDS_COUNT: &str = "ERR the ANY argument requires COUNT argument";

/// The sorted set under `key` (a read: counts a hit or miss), or the
/// WRONGTYPE error.
fn read_zset<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a ZSet>, &'static str> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// Meters per unit (`extractUnitOrReply`).
fn unit(raw: &[u8]) -> Result<f64, &'static str> {
    if raw.eq_ignore_ascii_case(b"m") {
        Ok(1.0)
    } else if raw.eq_ignore_ascii_case(b"km") {
        Ok(1000.0)
    } else if raw.eq_ignore_ascii_case(b"ft") {
        Ok(0.3048)
    } else if raw.eq_ignore_ascii_case(b"mi") {
        Ok(1609.34)
    } else {
        Err(BAD_UNIT)
    }
}

/// `extractLongLatOrReply`: a longitude and a latitude inside the limits.
fn lonlat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Cow<'static, str>> {
    let lon = parse_f64(lon).ok_or(err::NOT_FLOAT)?;
    let lat = parse_f64(lat).ok_or(err::NOT_FLOAT)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(Cow::Owned(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// `extractDistanceOrReply`: radius and unit.
fn radius(value: &[u8], unit_arg: &[u8]) -> Result<(f64, f64), &'static str> {
    let r = parse_f64(value).ok_or(NEED_RADIUS)?;
    if r < 0.0 {
        return Err(NEG_RADIUS);
    }
    Ok((r, unit(unit_arg)?))
}

/// `extractBoxOrReply`: width, height and unit.
fn boxed(w: &[u8], h: &[u8], unit_arg: &[u8]) -> Result<(f64, f64, f64), &'static str> {
    let w = parse_f64(w).ok_or(NEED_WIDTH)?;
    let h = parse_f64(h).ok_or(NEED_HEIGHT)?;
    if h < 0.0 || w < 0.0 {
        return Err(NEG_BOX);
    }
    Ok((w, h, unit(unit_arg)?))
}

// ---- GEOADD ----

/// `GEOADD key [NX|XX] [CH] longitude latitude member [...]`: ZADD of the
/// positions' geohash scores. Every position is checked before anything
/// is added.
pub fn geoadd(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut first = 2;
    while first < args.len() {
        let a = args.get(first);
        if a.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if a.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if a.eq_ignore_ascii_case(b"ch") {
            ch = true;
        } else {
            break;
        }
        first += 1;
    }
    let rest = args.len() - first;
    if rest == 0 || !rest.is_multiple_of(3) || (nx && xx) {
        return out.error(err::SYNTAX);
    }
    for at in (first..args.len()).step_by(3) {
        if let Err(e) = lonlat(args.get(at), args.get(at + 1)) {
            return out.error(&e);
        }
    }
    let key = args.get(1);
    let mut guard = if xx {
        match db.entry_mut(key) {
            Some(g) => g,
            None => return out.int(0),
        }
    } else {
        db.entry_or_insert_with(key, || Value::ZSet(Box::default()))
    };
    let Ok(mut z) = guard.zset() else {
        return out.error(err::WRONGTYPE);
    };
    let (mut added, mut updated) = (0i64, 0i64);
    for at in (first..args.len()).step_by(3) {
        let Ok((lon, lat)) = lonlat(args.get(at), args.get(at + 1)) else {
            continue;
        };
        let score = geohash::encode_score(lon, lat);
        let member = args.get(at + 2);
        match z.score(member) {
            Some(_) if nx => {}
            Some(cur) => {
                if cur != score {
                    z.insert(member, score);
                    updated += 1;
                }
            }
            None if xx => {}
            None => {
                z.insert(member, score);
                added += 1;
            }
        }
    }
    out.int(if ch { added + updated } else { added });
}

// ---- GEODIST, GEOHASH, GEOPOS ----

/// `GEODIST key member1 member2 [M|KM|FT|MI]`
pub fn geodist(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let to_meters = match args.len() {
        5 => match unit(args.get(4)) {
            Ok(u) => u,
            Err(e) => return out.error(e),
        },
        4 => 1.0,
        _ => return out.error(err::SYNTAX),
    };
    let z = match read_zset(db, args.get(1)) {
        Ok(Some(z)) => z,
        Ok(None) => return out.nil(),
        Err(e) => return out.error(e),
    };
    let (Some(a), Some(b)) = (z.score(args.get(2)), z.score(args.get(3))) else {
        return out.nil();
    };
    let (x1, y1) = geohash::decode_score(a);
    let (x2, y2) = geohash::decode_score(b);
    bulk_distance(out, geohash::distance(x1, y1, x2, y2) / to_meters);
}

fn bulk_distance(out: &mut Vec<u8>, d: f64) {
    out.bulk(geohash::format_distance(d, &mut [0; FLOAT_TEXT]));
}

fn bulk_coord(out: &mut Vec<u8>, v: f64) {
    out.bulk(geohash::format_coord(v, &mut [0; FLOAT_TEXT]));
}

/// `GEOHASH key [member ...]`: 11-character standard geohashes, nil for
/// missing members.
pub fn geohash_cmd(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let z = match read_zset(db, args.get(1)) {
        Ok(z) => z,
        Err(e) => return out.error(e),
    };
    out.array(args.len() - 2);
    for m in args.iter_from(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => out.bulk(&geohash::geohash_string(s)),
            None => out.nil(),
        }
    }
}

/// `GEOPOS key [member ...]`: [longitude, latitude] pairs, a nil array for
/// missing members.
pub fn geopos(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let z = match read_zset(db, args.get(1)) {
        Ok(z) => z,
        Err(e) => return out.error(e),
    };
    out.array(args.len() - 2);
    for m in args.iter_from(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => {
                let (lon, lat) = geohash::decode_score(s);
                out.array(2);
                bulk_coord(out, lon);
                bulk_coord(out, lat);
            }
            None => out.nil_array(),
        }
    }
}

// ---- Searches ----

/// Which search command (Redis's `georadiusGeneric` flags).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    /// GEORADIUS / GEORADIUS_RO (`ro`: no STORE).
    Radius { ro: bool },
    /// GEORADIUSBYMEMBER / GEORADIUSBYMEMBER_RO.
    Member { ro: bool },
    /// GEOSEARCH.
    Search,
    /// GEOSEARCHSTORE.
    SearchStore,
}

impl Flavor {
    fn of(name: &[u8]) -> Flavor {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("georadius") {
            Flavor::Radius { ro: false }
        } else if is("georadius_ro") {
            Flavor::Radius { ro: true }
        } else if is("georadiusbymember") {
            Flavor::Member { ro: false }
        } else if is("georadiusbymember_ro") {
            Flavor::Member { ro: true }
        } else if is("geosearchstore") {
            Flavor::SearchStore
        } else {
            Flavor::Search
        }
    }

    /// Index of the source key.
    fn src(self) -> usize {
        if self == Flavor::SearchStore { 2 } else { 1 }
    }

    /// Where the options start.
    fn base(self) -> usize {
        match self {
            Flavor::Radius { .. } => 6,
            Flavor::Member { .. } => 5,
            Flavor::Search => 2,
            Flavor::SearchStore => 3,
        }
    }

    fn searches(self) -> bool {
        matches!(self, Flavor::Search | Flavor::SearchStore)
    }

    fn may_store(self) -> bool {
        matches!(
            self,
            Flavor::Radius { ro: false } | Flavor::Member { ro: false }
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A parsed search.
struct Query {
    shape: Shape,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    sort: Sort,
    /// 0: no limit.
    count: usize,
    any: bool,
    /// Index of the key to store into, and whether STOREDIST.
    store: Option<usize>,
    storedist: bool,
}

/// Parses a search's arguments in `georadiusGeneric`'s order (FROMMEMBER
/// is resolved against `z` where it appears); `z` is the source, already
/// type-checked. `Ok(None)`: the source is missing and the arguments are
/// valid (the reply is an empty array, or 0 when storing).
fn parse(args: &Args, flavor: Flavor, z: Option<&ZSet>) -> Result<Query, Cow<'static, str>> {
    let mut shape = Shape {
        lon: 0.0,
        lat: 0.0,
        kind: ShapeKind::Radius(0.0),
        conversion: 1.0,
    };
    let mut store = None;
    match flavor {
        Flavor::Radius { .. } => {
            (shape.lon, shape.lat) = lonlat(args.get(2), args.get(3))?;
            let (r, conv) = radius(args.get(4), args.get(5))?;
            shape.kind = ShapeKind::Radius(r);
            shape.conversion = conv;
        }
        Flavor::Member { .. } => {
            // Without a source Redis checks neither the member nor the radius.
            if let Some(z) = z {
                let score = z.score(args.get(2)).ok_or(BAD_MEMBER)?;
                (shape.lon, shape.lat) = geohash::decode_score(score);
                let (r, conv) = radius(args.get(3), args.get(4))?;
                shape.kind = ShapeKind::Radius(r);
                shape.conversion = conv;
            }
        }
        Flavor::Search => {}
        Flavor::SearchStore => store = Some(1),
    }
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut storedist = false;
    let mut sort = Sort::None;
    let mut count = 0usize;
    let base = flavor.base();
    let remaining = args.len() - base;
    let mut i = 0;
    while i < remaining {
        let at = base + i;
        let is = |k: &str| args.is(at, k);
        if is("withdist") {
            withdist = true;
        } else if is("withhash") {
            withhash = true;
        } else if is("withcoord") {
            withcoord = true;
        } else if is("any") {
            any = true;
        } else if is("asc") {
            sort = Sort::Asc;
        } else if is("desc") {
            sort = Sort::Desc;
        } else if is("count") && i + 1 < remaining {
            let n = parse_i64(args.get(at + 1)).ok_or(err::NOT_INTEGER)?;
            if n <= 0 {
                return Err(COUNT_POSITIVE.into());
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 1;
        } else if (is("store") || is("storedist")) && i + 1 < remaining && flavor.may_store() {
            store = Some(at + 1);
            storedist = is("storedist");
            i += 1;
        } else if is("storedist") && flavor == Flavor::SearchStore {
            storedist = true;
        } else if is("frommember") && i + 1 < remaining && flavor.searches() && !fromloc {
            if let Some(z) = z {
                let score = z.score(args.get(at + 1)).ok_or(BAD_MEMBER)?;
                (shape.lon, shape.lat) = geohash::decode_score(score);
            }
            frommember = true;
            i += 1;
        } else if is("fromlonlat") && i + 2 < remaining && flavor.searches() && !frommember {
            (shape.lon, shape.lat) = lonlat(args.get(at + 1), args.get(at + 2))?;
            fromloc = true;
            i += 2;
        } else if is("byradius") && i + 2 < remaining && flavor.searches() && !bybox {
            let (r, conv) = radius(args.get(at + 1), args.get(at + 2))?;
            shape.kind = ShapeKind::Radius(r);
            shape.conversion = conv;
            byradius = true;
            i += 2;
        } else if is("bybox") && i + 3 < remaining && flavor.searches() && !byradius {
            let (width, height, conv) =
                boxed(args.get(at + 1), args.get(at + 2), args.get(at + 3))?;
            shape.kind = ShapeKind::Box { width, height };
            shape.conversion = conv;
            bybox = true;
            i += 3;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        let who = if flavor == Flavor::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Cow::Owned(format!(
            "ERR {who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = || String::from_utf8_lossy(args.get(0)).into_owned();
    if flavor.searches() && !(frommember || fromloc) {
        return Err(Cow::Owned(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            name()
        )));
    }
    if flavor.searches() && !(byradius || bybox) {
        return Err(Cow::Owned(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {}",
            name()
        )));
    }
    if any && count == 0 {
        return Err(ANY_NEEDS_COUNT.into());
    }
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    Ok(Query {
        shape,
        withdist,
        withhash,
        withcoord,
        sort,
        count,
        any,
        store,
        storedist,
    })
}

/// One point found by a search.
struct Hit<'z> {
    member: &'z [u8],
    score: f64,
    lon: f64,
    lat: f64,
    dist: f64,
}

/// `membersOfAllNeighbors`: the members of `z` inside the shape, box after
/// box, stopping at `limit` hits (ANY) when not 0.
fn collect<'z>(z: &'z ZSet, shape: &Shape, limit: usize) -> Vec<Hit<'z>> {
    let mut hits = Vec::new();
    let (ranges, n) = shape.score_ranges();
    for &(min, max) in &ranges[..n] {
        if limit != 0 && hits.len() >= limit {
            break;
        }
        let range = Range::Score(
            ScoreBound {
                value: min as f64,
                exclusive: false,
            },
            ScoreBound {
                value: max as f64,
                exclusive: true,
            },
        );
        let (a, b) = z.rank_range(&range);
        for (member, score) in z.iter_from(a).take(b.saturating_sub(a)) {
            if let Some((lon, lat, dist)) = shape.contains(score) {
                hits.push(Hit {
                    member,
                    score,
                    lon,
                    lat,
                    dist,
                });
            }
            if limit != 0 && hits.len() >= limit {
                break;
            }
        }
    }
    hits
}

/// Sorts and cuts the hits as Redis does: by distance (stable), then the
/// first COUNT.
fn order(hits: &mut Vec<Hit<'_>>, q: &Query) {
    match q.sort {
        Sort::Asc => hits.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Sort::Desc => hits.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        Sort::None => {}
    }
    if q.count != 0 {
        hits.truncate(q.count);
    }
}

fn reply_hits(out: &mut Vec<u8>, hits: &[Hit<'_>], q: &Query) {
    let options = q.withdist as usize + q.withhash as usize + q.withcoord as usize;
    out.array(hits.len());
    for h in hits {
        if options > 0 {
            out.array(options + 1);
        }
        out.bulk(h.member);
        if q.withdist {
            bulk_distance(out, h.dist / q.shape.conversion);
        }
        if q.withhash {
            out.int(h.score as i64);
        }
        if q.withcoord {
            out.array(2);
            bulk_coord(out, h.lon);
            bulk_coord(out, h.lat);
        }
    }
}

/// What a search leaves to do: nothing (its reply is written), or store
/// `pairs` (member, score) under the key at `args[key]` and reply their
/// count.
struct ToStore {
    key: usize,
    pairs: Vec<(Box<[u8]>, f64)>,
}

/// Runs the search part of any search command on the source's shard.
/// Writes the reply for a non-storing search or an error; returns what to
/// store otherwise.
fn search(db: &mut Db, args: &Args, out: &mut Vec<u8>) -> Option<ToStore> {
    let flavor = Flavor::of(args.get(0));
    let z = match read_zset(db, args.get(flavor.src())) {
        Ok(z) => z,
        Err(e) => {
            out.error(e);
            return None;
        }
    };
    let q = match parse(args, flavor, z) {
        Ok(q) => q,
        Err(e) => {
            out.error(&e);
            return None;
        }
    };
    let Some(z) = z else {
        return match q.store {
            Some(key) => Some(ToStore {
                key,
                pairs: Vec::new(),
            }),
            None => {
                out.array(0);
                None
            }
        };
    };
    let mut hits = collect(z, &q.shape, if q.any { q.count } else { 0 });
    order(&mut hits, &q);
    match q.store {
        None => {
            reply_hits(out, &hits, &q);
            None
        }
        Some(key) => Some(ToStore {
            key,
            pairs: hits
                .iter()
                .map(|h| {
                    let score = if q.storedist {
                        h.dist / q.shape.conversion
                    } else {
                        h.score
                    };
                    (Box::from(h.member), score)
                })
                .collect(),
        }),
    }
}

/// Every search command with its keys on one shard.
pub fn search_cmd(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if let Some(ToStore { key, pairs }) = search(db, args, out) {
        super::zsets::store_elems(db, args.get(key), &pairs);
        out.int(pairs.len() as i64);
    }
}

/// GEORADIUS and GEORADIUSBYMEMBER's keys: the source, and up to the last
/// STORE/STOREDIST key when there is one (the finder gives a range, so the
/// arguments between are named too; they only widen the shards a command
/// is routed over).
pub fn radius_keys(args: &Args) -> Option<(usize, usize)> {
    let base = Flavor::of(args.get(0)).base();
    let mut last = 1;
    let mut i = base;
    while i < args.len() {
        if (args.is(i, "store") || args.is(i, "storedist")) && i + 1 < args.len() {
            last = i + 1;
            i += 1;
        } else if args.is(i, "count") && i + 1 < args.len() {
            i += 1;
        }
        i += 1;
    }
    Some((1, last))
}

spread!(search_spread => search_across);

/// A storing search with source and destination on two shards: the search
/// runs on the source's shard, the result is installed on the
/// destination's, both held throughout.
async fn search_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let flavor = Flavor::of(args.get(0));
    let src = args.get(flavor.src()).to_vec();
    let dst_at = match flavor {
        Flavor::SearchStore => 1,
        _ => radius_keys(args).map_or(1, |(_, last)| last),
    };
    let dst = args.get(dst_at).to_vec();
    let (from, to) = (shard.owner(&src), shard.owner(&dst));
    let mut atomic = Atomic::new(shard, tx, [&src[..], &dst[..]]);
    let buf = args.buf().to_vec();
    let ranges = args.ranges().to_vec();
    let searched = atomic
        .on(from, move |s: &Shard| {
            let args = Args::new(&buf, &ranges);
            let mut reply = Vec::new();
            let stored = search(&mut s.db(), &args, &mut reply);
            (reply, stored.map(|t| t.pairs))
        })
        .await;
    let pairs = match searched {
        None => return out.error(SHARD_GONE),
        Some((reply, None)) => return out.extend_from_slice(&reply),
        Some((_, Some(pairs))) => pairs,
    };
    let n = pairs.len() as i64;
    let stored = atomic
        .on(to, move |s: &Shard| {
            super::zsets::store_elems(&mut s.db(), &dst, &pairs)
        })
        .await;
    match stored {
        Some(_) => out.int(n),
        None => out.error(SHARD_GONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Handler;
    use crate::command::testing::{db, run, text};

    fn r(db: &mut Db, h: Handler, argv: &[&str]) -> String {
        let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        text(run(db, h, &argv))
    }

    #[test]
    fn geoadd_scores_and_errors() {
        let mut db = db();
        let add = |db: &mut Db, a: &[&str]| r(db, geoadd, a);
        assert_eq!(
            add(&mut db, &["geoadd", "k", "13.361389", "38.115556", "p"]),
            ":1\r\n"
        );
        assert_eq!(
            add(&mut db, &["geoadd", "k", "200", "100", "x"]),
            "-ERR invalid longitude,latitude pair 200.000000,100.000000\r\n"
        );
        assert_eq!(
            add(&mut db, &["geoadd", "k", "nx", "xx", "1", "2", "x"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            add(&mut db, &["geoadd", "k", "xx", "ch", "1", "2", "p"]),
            ":1\r\n"
        );
        assert_eq!(
            add(&mut db, &["geoadd", "k", "nx", "3", "4", "p"]),
            ":0\r\n"
        );
        assert_eq!(
            add(&mut db, &["geoadd", "n", "xx", "3", "4", "p"]),
            ":0\r\n"
        );
        assert_eq!(
            r(&mut db, geohash_cmd, &["geohash", "k", "p", "q"]),
            "*2\r\n$11\r\ns02equ04ve0\r\n$-1\r\n"
        );
    }

    #[test]
    fn search_replies_as_redis() {
        let mut db = db();
        r(
            &mut db,
            geoadd,
            &[
                "geoadd",
                "k",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania",
            ],
        );
        assert_eq!(
            r(
                &mut db,
                search_cmd,
                &[
                    "georadius",
                    "k",
                    "15",
                    "37",
                    "200",
                    "km",
                    "withdist",
                    "withcoord",
                    "withhash",
                    "asc"
                ]
            ),
            "*2\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n$20\r\n15.08726745843887329\r\n$20\r\n37.50266842333162032\r\n\
             *4\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n:3479099956230698\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n"
        );
        assert_eq!(
            r(
                &mut db,
                search_cmd,
                &["georadius", "k", "15", "37", "200", "km", "any"]
            ),
            "-ERR the ANY argument requires COUNT argument\r\n"
        );
        assert_eq!(
            r(
                &mut db,
                search_cmd,
                &["geosearch", "k", "bybox", "1", "1", "km", "withdist"]
            ),
            "-ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch\r\n"
        );
    }
}
