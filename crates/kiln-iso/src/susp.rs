//! System Use Sharing Protocol (SUSP 1.12) entries carrying Rock Ridge (RRIP 1.09, "RRIP_1991A")
//! attributes, and where they go: the directory record's system use field, then continuation
//! areas (CE) of at most one block each.

/// Bytes of a CE entry.
pub(crate) const CE_LEN: usize = 28;
const BLOCK: usize = 2048;

fn entry(sig: &[u8; 2], body: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(4 + body.len());
    e.extend_from_slice(sig);
    e.push((4 + body.len()) as u8);
    e.push(1);
    e.extend_from_slice(body);
    e
}

/// Both-endian 32-bit (ECMA-119 7.3.3).
pub(crate) fn both32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// SP: SUSP is in use, no bytes skipped.
pub(crate) fn sp() -> Vec<u8> {
    entry(b"SP", &[0xBE, 0xEF, 0])
}

/// ER: the RRIP 1.09 extension reference.
pub(crate) fn er() -> Vec<u8> {
    const ID: &[u8] = b"RRIP_1991A";
    const DES: &[u8] =
        b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
    const SRC: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";
    let mut body = vec![ID.len() as u8, DES.len() as u8, SRC.len() as u8, 1];
    body.extend_from_slice(ID);
    body.extend_from_slice(DES);
    body.extend_from_slice(SRC);
    entry(b"ER", &body)
}

/// RR flag bits (RRIP 1.09 §4.1.1: which fields follow).
pub(crate) const RR_PX: u8 = 1;
pub(crate) const RR_PN: u8 = 2;
pub(crate) const RR_SL: u8 = 4;
pub(crate) const RR_NM: u8 = 8;
pub(crate) const RR_TF: u8 = 128;

pub(crate) fn rr(flags: u8) -> Vec<u8> {
    entry(b"RR", &[flags])
}

/// PX: mode, links, owner, group (the 36-byte RRIP 1.09 form).
pub(crate) fn px(mode: u32, nlink: u32, uid: u32, gid: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    for v in [mode, nlink, uid, gid] {
        body.extend_from_slice(&both32(v));
    }
    entry(b"PX", &body)
}

/// PN: a device number (high and low 32 bits).
pub(crate) fn pn(rdev: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&both32((rdev >> 32) as u32));
    body.extend_from_slice(&both32(rdev as u32));
    entry(b"PN", &body)
}

/// TF: modification, access and attribute-change times, all `date` (7-byte form).
pub(crate) fn tf(date: &[u8; 7]) -> Vec<u8> {
    let mut body = vec![0x0E];
    for _ in 0..3 {
        body.extend_from_slice(date);
    }
    entry(b"TF", &body)
}

/// NM entries for `name`, split with the CONTINUE flag when longer than one entry holds.
pub(crate) fn nm(name: &[u8]) -> Vec<Vec<u8>> {
    const MAX: usize = 250;
    let chunks: Vec<&[u8]> = name.chunks(MAX).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut body = vec![u8::from(i + 1 < chunks.len())];
            body.extend_from_slice(c);
            entry(b"NM", &body)
        })
        .collect()
}

/// SL entries for a symlink `target`: component records (ROOT, CURRENT, PARENT or a name,
/// names over 248 bytes split with the component CONTINUE flag) packed into entries of at
/// most 255 bytes, each but the last with the SL CONTINUE flag.
pub(crate) fn sl(target: &[u8]) -> Vec<Vec<u8>> {
    const AREA: usize = 250;
    let mut records: Vec<Vec<u8>> = Vec::new();
    if target.first() == Some(&b'/') {
        records.push(vec![0x08, 0]);
    }
    for part in target.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        match part {
            b"." => records.push(vec![0x02, 0]),
            b".." => records.push(vec![0x04, 0]),
            _ => {
                let pieces: Vec<&[u8]> = part.chunks(AREA - 2).collect();
                for (i, piece) in pieces.iter().enumerate() {
                    let mut r = vec![u8::from(i + 1 < pieces.len()), piece.len() as u8];
                    r.extend_from_slice(piece);
                    records.push(r);
                }
            }
        }
    }
    if records.is_empty() {
        // A target of only slashes is the root; an empty one cannot be made on Linux.
        records.push(vec![0x08, 0]);
    }
    let mut bodies: Vec<Vec<u8>> = vec![vec![0]];
    for r in records {
        if bodies.last().is_some_and(|b| b.len() + r.len() > AREA) {
            bodies.push(vec![0]);
        }
        if let Some(b) = bodies.last_mut() {
            b.extend_from_slice(&r);
        }
    }
    let n = bodies.len();
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, mut b)| {
            b[0] = u8::from(i + 1 < n);
            entry(b"SL", &b)
        })
        .collect()
}

/// Where a continuation area goes: block index within the continuation region, byte offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Area {
    pub block: u32,
    pub offset: u32,
    pub len: u32,
}

/// Hands out continuation areas, packed into the blocks of the continuation region.
#[derive(Debug, Default)]
pub(crate) struct AreaAlloc {
    pub blocks: u32,
    used: usize,
}

impl AreaAlloc {
    fn take(&mut self, len: usize) -> Area {
        if self.blocks == 0 || self.used + len > BLOCK {
            self.blocks += 1;
            self.used = 0;
        }
        let a = Area {
            block: self.blocks - 1,
            offset: self.used as u32,
            len: len as u32,
        };
        self.used += len;
        a
    }
}

/// The entries of one directory record, placed.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    /// In the record, without the trailing CE (present when `areas` is not empty).
    pub record: Vec<u8>,
    /// Continuation areas in chain order, each without its trailing CE (present but on the
    /// last), and where each goes.
    pub areas: Vec<(Vec<u8>, Area)>,
}

impl Placed {
    /// Bytes in the directory record.
    pub fn record_len(&self) -> usize {
        self.record.len() + if self.areas.is_empty() { 0 } else { CE_LEN }
    }
}

/// Places `entries` (each ≤ 255 bytes): all in the record if `cap` bytes hold them, otherwise as
/// many as fit beside a CE, the rest in chained continuation areas.
pub(crate) fn place(entries: Vec<Vec<u8>>, cap: usize, alloc: &mut AreaAlloc) -> Placed {
    let total: usize = entries.iter().map(Vec::len).sum();
    let mut placed = Placed::default();
    if total <= cap {
        placed.record = entries.concat();
        return placed;
    }
    let mut rest = entries.into_iter().peekable();
    while let Some(e) = rest.peek() {
        if placed.record.len() + e.len() + CE_LEN > cap {
            break;
        }
        placed.record.extend_from_slice(e);
        rest.next();
    }
    let mut areas: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(e) = rest.next() {
        let last = rest.peek().is_none();
        let cur = areas.last().map_or(0, Vec::len);
        let room = if last { BLOCK } else { BLOCK - CE_LEN };
        if cur + e.len() > room && cur > 0 {
            areas.push(Vec::new());
        }
        if let Some(a) = areas.last_mut() {
            a.extend_from_slice(&e);
        }
    }
    let n = areas.len();
    placed.areas = areas
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let len = a.len() + if i + 1 < n { CE_LEN } else { 0 };
            let at = alloc.take(len);
            (a, at)
        })
        .collect();
    placed
}

/// A CE entry pointing at `area` in the continuation region starting at block `region`.
pub(crate) fn ce(region: u32, area: &Area) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&both32(region + area.block));
    body.extend_from_slice(&both32(area.offset));
    body.extend_from_slice(&both32(area.len));
    entry(b"CE", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_components() {
        let e = sl(b"/usr/../lib/./x");
        assert_eq!(e.len(), 1);
        assert_eq!(
            &e[0][5..],
            b"\x08\x00\x00\x03usr\x04\x00\x00\x03lib\x02\x00\x00\x01x"
        );
        let long = vec![b'a'; 255];
        let mut target = long.clone();
        for _ in 0..16 {
            target.push(b'/');
            target.extend_from_slice(&long);
        }
        let e = sl(&target);
        assert!(e.iter().all(|e| e.len() <= 255 && e[2] as usize == e.len()));
        assert!(e[..e.len() - 1].iter().all(|e| e[4] == 1));
        assert_eq!(e.last().map(|e| e[4]), Some(0));
    }

    #[test]
    fn placement_chains_areas() {
        let mut alloc = AreaAlloc::default();
        let entries: Vec<Vec<u8>> = (0..20).map(|_| vec![0u8; 250]).collect();
        let p = place(entries, 150, &mut alloc);
        assert!(p.record_len() <= 150);
        assert_eq!(p.areas.len(), 3);
        assert!(p.areas.iter().all(|(_, a)| a.offset + a.len <= 2048));
        let small = place(vec![vec![0u8; 10]], 150, &mut alloc);
        assert!(small.areas.is_empty());
    }
}
