//! Redis's geohash arithmetic: the 52-bit interleaved score a GEOADD
//! stores, its decoding back to a position, the nine score ranges a radius
//! or box search walks, and the haversine distance the search filters and
//! replies with.
//!
//! Pure functions over `f64`/`u64`, no keyspace access: the geo commands
//! (`command::geo`) use them on sorted-set scores. Every step follows
//! Redis 7.0's `geohash.c`, `geohash_helper.c` and `geo.c` operation for
//! operation (same constants, same order of floating-point operations,
//! same libm calls) because clients compare what they get bit for bit:
//! scores, `GEOPOS` digits, the 4-decimal distances and the members a
//! search returns near the edge of its shape.

use crate::protocol::float::round_scaled;
use crate::protocol::reply::{FLOAT_TEXT, IntText};

/// Bits per coordinate of a stored score (26 + 26 = 52, what a double holds
/// exactly).
pub(crate) const STEP_MAX: u8 = 26;
/// Longitude and latitude limits GEOADD accepts (EPSG:900913: the poles
/// cannot be projected).
pub(crate) const LONG_MIN: f64 = -180.0;
pub(crate) const LONG_MAX: f64 = 180.0;
pub(crate) const LAT_MIN: f64 = -85.05112878;
pub(crate) const LAT_MAX: f64 = 85.05112878;
/// Redis's earth radius for the haversine formula (quadratic mean, WGS-84).
pub(crate) const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// A geohash of `step` bits per coordinate; `bits == 0 && step == 0` is
/// Redis's "zeroed" box (a neighbor excluded from a search).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash left-aligned to 52 bits: the lowest score of its box.
    pub(crate) fn align52(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

#[derive(Clone, Copy, Debug)]
struct Range {
    min: f64,
    max: f64,
}

const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

#[derive(Clone, Copy, Debug)]
struct Area {
    lon: Range,
    lat: Range,
}

/// Spreads the low 32 bits of `x` to the even bit positions and those of
/// `y` to the odd ones.
fn interleave64(x: u32, y: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = u64::from(x);
    let mut y = u64::from(y);
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

/// The inverse of [`interleave64`]: even bits in the low half, odd bits in
/// the high half.
fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// `geohashEncode`: latitude bits at even positions, longitude at odd.
/// `None` outside the ranges (Redis returns 0 and leaves the hash zero).
fn encode(lon_range: Range, lat_range: Range, lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_range.min || lat > lat_range.max || lon < lon_range.min || lon > lon_range.max {
        return None;
    }
    let mut lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min);
    let mut lon_offset = (lon - lon_range.min) / (lon_range.max - lon_range.min);
    let scale = (1u64 << step) as f64;
    lat_offset *= scale;
    lon_offset *= scale;
    // The offsets are in [0, 2^step]; C's double → uint32_t truncation.
    Some(HashBits {
        bits: interleave64(lat_offset as u32, lon_offset as u32),
        step,
    })
}

fn decode(lon_range: Range, lat_range: Range, hash: HashBits) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let lon_scale = lon_range.max - lon_range.min;
    let ilato = sep as u32;
    let ilono = (sep >> 32) as u32;
    let div = (1u64 << hash.step) as f64;
    Some(Area {
        lat: Range {
            min: lat_range.min + (f64::from(ilato) * 1.0 / div) * lat_scale,
            max: lat_range.min + ((f64::from(ilato.wrapping_add(1))) * 1.0 / div) * lat_scale,
        },
        lon: Range {
            min: lon_range.min + (f64::from(ilono) * 1.0 / div) * lon_scale,
            max: lon_range.min + ((f64::from(ilono.wrapping_add(1))) * 1.0 / div) * lon_scale,
        },
    })
}

/// The centre of an area, clamped to the valid ranges (a score whose
/// offset overflowed to 2^26, as GEOADD of longitude 180 stores, decodes
/// half a cell past the limit).
fn area_center(area: &Area) -> (f64, f64) {
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The score GEOADD stores for a position already checked to be inside
/// the limits.
pub(crate) fn encode_score(lon: f64, lat: f64) -> f64 {
    encode(LONG_RANGE, LAT_RANGE, lon, lat, STEP_MAX).map_or(0, HashBits::align52) as f64
}

/// C's `(uint64_t)score` as the x86-64 build of Redis computes it
/// (`cvttsd2si`, with 2^63 subtracted first for scores at or above it):
/// exact for scores in [0, 2^64), two's complement for negative ones,
/// and 0 for infinities and scores past 2^64 (what redis-server 7.0.15
/// answers for GEOPOS of such members).
fn score_bits(score: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    const INDEFINITE: u64 = 0x8000_0000_0000_0000;
    let cvt = |x: f64| {
        if (-TWO63..TWO63).contains(&x) {
            (x as i64) as u64
        } else {
            INDEFINITE
        }
    };
    if score < TWO63 {
        cvt(score)
    } else {
        cvt(score - TWO63) ^ INDEFINITE
    }
}

/// `decodeGeohash`: the (longitude, latitude) of any sorted-set score
/// (every score decodes; non-geo scores give some clamped position, as in
/// Redis).
pub(crate) fn decode_score(score: f64) -> (f64, f64) {
    let hash = HashBits {
        bits: score_bits(score),
        step: STEP_MAX,
    };
    decode(LONG_RANGE, LAT_RANGE, hash).map_or((0.0, 0.0), |a| area_center(&a))
}

/// GEOHASH's 11-character string: the decoded position re-encoded with
/// the standard latitude range ±90, 50 bits in 10 base32 characters and a
/// final '0' (Redis keeps only 52 bits).
pub(crate) fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score);
    let std_lon = Range {
        min: -180.0,
        max: 180.0,
    };
    let std_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    let bits = encode(std_lon, std_lat, lon, lat, 26).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[idx as usize];
    }
    out
}

fn move_x(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> shift;
    hash.bits = x | y;
}

fn move_y(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> shift;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> shift;
    hash.bits = x | y;
}

/// The eight neighbors, in `geohashNeighbors`' field order: east, west,
/// north, south, north-east, north-west, south-east, south-west.
#[derive(Clone, Copy, Debug, Default)]
struct Neighbors {
    north: HashBits,
    east: HashBits,
    west: HashBits,
    south: HashBits,
    north_east: HashBits,
    south_east: HashBits,
    north_west: HashBits,
    south_west: HashBits,
}

fn neighbors(hash: HashBits) -> Neighbors {
    let at = |dx: i8, dy: i8| {
        let mut h = hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    };
    Neighbors {
        east: at(1, 0),
        west: at(-1, 0),
        south: at(0, -1),
        north: at(0, 1),
        north_west: at(-1, 1),
        north_east: at(1, 1),
        south_east: at(1, -1),
        south_west: at(-1, -1),
    }
}

/// `geohashEstimateStepsByRadius`: the precision whose cells are about as
/// large as the search radius.
pub(crate) fn estimate_steps(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The area a search covers: a circle of `radius`, or an axis-aligned box
/// of `width` × `height`, in the unit whose size in meters is `conversion`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ShapeKind {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search shape around a centre (longitude, latitude).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Shape {
    pub lon: f64,
    pub lat: f64,
    pub kind: ShapeKind,
    /// Meters per unit of the shape's (and the reply's) distances.
    pub conversion: f64,
}

impl Shape {
    /// `geohashBoundingBox`: [min lon, min lat, max lon, max lat].
    fn bounds(&self) -> [f64; 4] {
        let (height, width) = match self.kind {
            ShapeKind::Radius(r) => (self.conversion * r, self.conversion * r),
            ShapeKind::Box { width, height } => (
                self.conversion * (height / 2.0),
                self.conversion * (width / 2.0),
            ),
        };
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        let long_delta_top = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let southern = self.lat < 0.0;
        let (min_lon, max_lon) = if southern {
            (self.lon - long_delta_bottom, self.lon + long_delta_bottom)
        } else {
            (self.lon - long_delta_top, self.lon + long_delta_top)
        };
        [min_lon, self.lat - lat_delta, max_lon, self.lat + lat_delta]
    }

    /// `geohashCalculateAreasByShapeWGS84` then `membersOfAllNeighbors`:
    /// the score ranges `[min, max)` to scan, in Redis's order (centre,
    /// N, S, E, W, NE, NW, SE, SW), excluded boxes dropped and a box equal
    /// to the one scanned just before skipped. At most nine.
    pub(crate) fn score_ranges(&self) -> ([(u64, u64); 9], usize) {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius_meters = match self.kind {
            ShapeKind::Radius(r) => r,
            ShapeKind::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, self.lat);
        let mut hash = encode(LONG_RANGE, LAT_RANGE, self.lon, self.lat, steps).unwrap_or_default();
        let mut nb = neighbors(hash);
        let mut area = decode(LONG_RANGE, LAT_RANGE, hash);

        let decode_or = |h: HashBits| decode(LONG_RANGE, LAT_RANGE, h);
        let mut decrease = false;
        if let Some(north) = decode_or(nb.north) {
            decrease |= north.lat.max < max_lat;
        }
        if let Some(south) = decode_or(nb.south) {
            decrease |= south.lat.min > min_lat;
        }
        if let Some(east) = decode_or(nb.east) {
            decrease |= east.lon.max < max_lon;
        }
        if let Some(west) = decode_or(nb.west) {
            decrease |= west.lon.min > min_lon;
        }
        if steps > 1 && decrease {
            steps -= 1;
            hash = encode(LONG_RANGE, LAT_RANGE, self.lon, self.lat, steps).unwrap_or_default();
            nb = neighbors(hash);
            area = decode(LONG_RANGE, LAT_RANGE, hash);
        }

        if steps >= 2
            && let Some(area) = area
        {
            let zero = HashBits::default();
            if area.lat.min < min_lat {
                nb.south = zero;
                nb.south_west = zero;
                nb.south_east = zero;
            }
            if area.lat.max > max_lat {
                nb.north = zero;
                nb.north_east = zero;
                nb.north_west = zero;
            }
            if area.lon.min < min_lon {
                nb.west = zero;
                nb.south_west = zero;
                nb.north_west = zero;
            }
            if area.lon.max > max_lon {
                nb.east = zero;
                nb.south_east = zero;
                nb.north_east = zero;
            }
        }

        let boxes = [
            hash,
            nb.north,
            nb.south,
            nb.east,
            nb.west,
            nb.north_east,
            nb.north_west,
            nb.south_east,
            nb.south_west,
        ];
        let mut out = [(0u64, 0u64); 9];
        let mut n = 0;
        // Redis's `last_processed` is an index that means "none" while 0,
        // so a box equal to the centre right after it is scanned twice.
        let mut last_processed = 0usize;
        for (i, b) in boxes.iter().enumerate() {
            if b.is_zero() {
                continue;
            }
            if last_processed != 0 && boxes[last_processed] == *b {
                continue;
            }
            let min = b.align52();
            let max = HashBits {
                bits: b.bits + 1,
                step: b.step,
            }
            .align52();
            out[n] = (min, max);
            n += 1;
            last_processed = i;
        }
        (out, n)
    }

    /// Whether a point at `score` is inside the shape; its decoded position
    /// and its distance (in meters) from the centre if so.
    pub(crate) fn contains(&self, score: f64) -> Option<(f64, f64, f64)> {
        let (lon, lat) = decode_score(score);
        let dist = match self.kind {
            ShapeKind::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                if d > r * self.conversion {
                    return None;
                }
                d
            }
            ShapeKind::Box { width, height } => {
                let width_m = width * self.conversion;
                let height_m = height * self.conversion;
                let lat_distance = lat_distance(lat, self.lat);
                if lat_distance > height_m / 2.0 {
                    return None;
                }
                let lon_distance = distance(lon, lat, self.lon, lat);
                if lon_distance > width_m / 2.0 {
                    return None;
                }
                distance(self.lon, self.lat, lon, lat)
            }
        };
        Some((lon, lat, dist))
    }
}

/// Distance along a meridian (Redis's shortcut when the longitudes are
/// equal).
fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// `geohashGetDistance`: haversine great-circle distance in meters.
pub(crate) fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// Writes `value` as Redis's `addReplyHumanLongDouble` does (`%.17Lf`,
/// trailing zeros and a bare '.' removed, "-0" as "0") into `buf`;
/// returns the text (GEOPOS, WITHCOORD: two per position).
pub(crate) fn format_coord(value: f64, buf: &mut [u8; FLOAT_TEXT]) -> &[u8] {
    let len = fixed(value, 17, buf);
    let text = &buf[..len];
    let text = &text[..text.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1)];
    match text.strip_suffix(b".").unwrap_or(text) {
        b"-0" => b"0",
        text => text,
    }
}

/// Writes a distance as Redis's `addReplyDoubleDistance` (`%.4f`) into
/// `buf`; returns the text (GEODIST, WITHDIST: one per hit).
pub(crate) fn format_distance(value: f64, buf: &mut [u8; FLOAT_TEXT]) -> &[u8] {
    let len = fixed(value, 4, buf);
    &buf[..len]
}

/// `%.{decimals}f` of `value` (`decimals` ≤ 17) as C's printf writes it,
/// into `buf`; returns its length. The digits come from `round_scaled`
/// (exact, on the stack) for every coordinate and distance; `fmt` writes
/// what it cannot scale (magnitudes no position gives).
fn fixed(value: f64, decimals: u32, buf: &mut [u8; FLOAT_TEXT]) -> usize {
    use std::io::Write;
    let scale = 10u128.pow(decimals);
    if let Some(n) = round_scaled(value.abs(), decimals as i32)
        && let Ok(int) = i64::try_from(n / scale)
    {
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        if value.is_sign_negative() {
            put(b"-");
        }
        put(&IntText::new(int));
        if decimals > 0 {
            let fraction = IntText::new((n % scale) as i64);
            put(b".");
            put(&[b'0'; 17][..decimals as usize - fraction.len()]);
            put(&fraction);
        }
        return len;
    }
    let mut w = std::io::Cursor::new(&mut buf[..]);
    // `FLOAT_TEXT` holds any double in fixed notation with 17 decimals.
    let _ = write!(w, "{value:.*}", decimals as usize);
    w.position() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coord(v: f64) -> String {
        String::from_utf8(format_coord(v, &mut [0; FLOAT_TEXT]).to_vec()).unwrap()
    }

    fn dist(v: f64) -> String {
        String::from_utf8(format_distance(v, &mut [0; FLOAT_TEXT]).to_vec()).unwrap()
    }

    /// Both against the C library (`%.17f` trimmed as Redis trims it, and
    /// `%.4f`) on values of every sign and magnitude a position or a
    /// distance takes, ties for the last digit, and some no position gives.
    #[test]
    fn coordinates_and_distances_print_as_the_c_library() {
        use crate::protocol::float::c_texts::{fixed as c_fixed, xorshift};
        fn human(c: String) -> String {
            let t = c.trim_end_matches('0').trim_end_matches('.');
            if t == "-0" { "0".into() } else { t.into() }
        }
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let unit = |r: u64| (r >> 11) as f64 / (1u64 << 53) as f64;
        let mut values = vec![
            0.0,
            -0.0,
            180.0,
            -180.0,
            85.05112878,
            1e-30,
            -1e-30,
            1e300,
            0.00005,
            0.00015,
        ];
        for _ in 0..50_000 {
            values.push((unit(next()) - 0.5) * 360.0);
            values.push(unit(next()) * 4e7 / 10f64.powi((next() % 8) as i32));
            // A few fraction bits: exact ties for the 4th decimal.
            values.push(((next() >> 40) as f64) / 32.0);
        }
        for v in values {
            assert_eq!(coord(v), human(c_fixed(v, 17)), "{v:e}");
            assert_eq!(dist(v), c_fixed(v, 4), "{v:e}");
        }
    }

    /// Values from redis-server 7.0.15: GEOADD then ZSCORE, GEOPOS, GEOHASH.
    #[test]
    fn scores_positions_and_hashes_match_redis() {
        let cases: &[(f64, f64, f64, &str, &str, &str)] = &[
            (
                180.0,
                85.05112878,
                13510798882111488.0,
                "180",
                "85.0511287799999991",
                "bp05b5048p0",
            ),
            (
                -180.0,
                -85.05112878,
                0.0,
                "-179.99999731779098511",
                "-85.05112751263942528",
                "00bh0hbj200",
            ),
            (
                0.0,
                0.0,
                3377699720527872.0,
                "0.00000268220901489",
                "0.00000126736058093",
                "s0000000000",
            ),
            (
                13.361389,
                38.115556,
                3479099956230698.0,
                "13.36138933897018433",
                "38.11555639549629859",
                "sqc8b49rny0",
            ),
            (
                179.9999999,
                0.0001,
                4128299658423999.0,
                "179.99999731779098511",
                "0.00010012148579364",
                "xbpbpbpbxf0",
            ),
        ];
        for &(lon, lat, score, plon, plat, hash) in cases {
            assert_eq!(encode_score(lon, lat), score, "score of {lon},{lat}");
            let (dlon, dlat) = decode_score(score);
            assert_eq!(coord(dlon), plon);
            assert_eq!(coord(dlat), plat);
            assert_eq!(std::str::from_utf8(&geohash_string(score)).unwrap(), hash);
        }
    }

    /// Scores that are not geohashes decode as redis-server 7.0.15 does.
    #[test]
    fn non_geo_scores_decode_like_redis() {
        for s in [f64::INFINITY, 1e20] {
            let (lon, lat) = decode_score(s);
            assert_eq!(coord(lon), "-179.99999731779098511");
            assert_eq!(coord(lat), "-85.05112751263942528");
        }
        let (lon, lat) = decode_score(-1.0);
        assert_eq!(coord(lon), "180");
        assert_eq!(coord(lat), "85.0511287799999991");
        let (lon, lat) = decode_score(9007199254740992.0);
        assert_eq!(coord(lon), "180");
        assert_eq!(coord(lat), "-85.05112751263942528");
    }

    /// GEODIST values from redis-server 7.0.15 for the points above.
    #[test]
    fn distances_match_redis() {
        let d = |a: f64, b: f64, conv: f64| {
            let (x1, y1) = decode_score(a);
            let (x2, y2) = decode_score(b);
            dist(distance(x1, y1, x2, y2) / conv)
        };
        assert_eq!(d(13510798882111488.0, 0.0, 1000.0), "18919.8446");
        assert_eq!(
            d(3377699720527872.0, 3479099956230698.0, 1.0),
            "4454733.0204"
        );
        assert_eq!(
            d(3377699720527872.0, 3479099956230698.0, 1609.34),
            "2768.0496"
        );
        assert_eq!(
            d(3377699720527872.0, 3479099956230698.0, 0.3048),
            "14615265.8150"
        );
    }

    #[test]
    fn interleave_round_trips() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ffffff, 0x1234567),
            (u32::MAX, 7),
        ] {
            let sep = deinterleave64(interleave64(x, y));
            assert_eq!(sep as u32, x);
            assert_eq!((sep >> 32) as u32, y);
        }
    }

    #[test]
    fn steps_follow_the_radius_and_latitude() {
        assert_eq!(estimate_steps(0.0, 0.0), 26);
        assert_eq!(estimate_steps(1.0, 0.0), 24);
        assert_eq!(estimate_steps(1000.0, 0.0), 14);
        assert_eq!(estimate_steps(1000.0, 70.0), 13);
        assert_eq!(estimate_steps(1000.0, -85.0), 12);
        assert_eq!(estimate_steps(1e9, 0.0), 1);
    }

    #[test]
    fn neighbors_wrap_and_move_one_cell() {
        let h = encode(LONG_RANGE, LAT_RANGE, 0.0, 0.0, 2).unwrap();
        let nb = neighbors(h);
        let c = |h: HashBits| {
            let a = decode(LONG_RANGE, LAT_RANGE, h).unwrap();
            area_center(&a)
        };
        let (lon, lat) = c(h);
        assert!(c(nb.east).0 > lon && c(nb.east).1 == lat);
        assert!(c(nb.west).0 < lon && c(nb.west).1 == lat);
        assert!(c(nb.north).1 > lat && c(nb.north).0 == lon);
        assert!(c(nb.south).1 < lat && c(nb.south).0 == lon);
    }

    #[test]
    fn coordinates_print_like_redis() {
        assert_eq!(coord(0.0), "0");
        assert_eq!(coord(-0.0), "0");
        assert_eq!(coord(1.5), "1.5");
        assert_eq!(coord(-12.25), "-12.25");
        assert_eq!(dist(0.0), "0.0000");
        assert_eq!(dist(1.23456), "1.2346");
    }

    #[test]
    fn a_point_is_inside_its_own_radius() {
        let score = encode_score(13.361389, 38.115556);
        let (lon, lat) = decode_score(score);
        let shape = Shape {
            lon,
            lat,
            kind: ShapeKind::Radius(0.0),
            conversion: 1.0,
        };
        assert_eq!(shape.contains(score).map(|p| p.2), Some(0.0));
        let (ranges, n) = shape.score_ranges();
        assert!(
            ranges[..n]
                .iter()
                .any(|&(a, b)| (a..b).contains(&(score as u64)))
        );
    }
}
