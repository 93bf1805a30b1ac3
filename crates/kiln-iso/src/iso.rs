//! Planning (every extent placed before a byte is written) and writing of the image.

use crate::susp::{self, AreaAlloc, Placed};
use crate::tree::{Body, Content, Tree};
use crate::{boot, io_err, time, Error, IsoOptions, IsoReport, MAX_ELTORITO_EFI_IMAGE};
use kiln_formats::sparse::{is_zero, SparseInput};
use kiln_formats::OutFile;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub(crate) const BLOCK: u64 = 2048;
/// Largest extent of a multi-extent file: 4 GiB less one block.
const SECTION_MAX: u64 = 0xFFFF_F800;
/// Files up to this size are read whole into one reused buffer; larger ones are streamed.
const SMALL_FILE: u64 = 8 << 20;
/// Largest boot image whose boot info table kiln patches (it is read whole).
const MAX_PATCHED_BOOT_IMAGE: u64 = 64 << 20;
/// Blocks after the volume for the backup GPT (33 sectors of 512 bytes, rounded up).
const GPT_TAIL_BLOCKS: u64 = 9;

/// What a directory record points at.
#[derive(Debug, Clone, Copy)]
enum Target {
    Dir(usize),
    Section { data: usize, index: u64, len: u32 },
    Nothing,
}

#[derive(Debug)]
struct Record {
    target: Target,
    id: Vec<u8>,
    flags: u8,
    su: Placed,
}

impl Record {
    fn head_len(&self) -> usize {
        33 + self.id.len() + (1 - self.id.len() % 2)
    }

    fn len(&self) -> usize {
        let n = self.head_len() + self.su.record_len();
        n + n % 2
    }
}

#[derive(Debug)]
struct DirPlan {
    node: usize,
    /// 1-based number of the parent in the path table.
    parent: u16,
    id: Vec<u8>,
    records: Vec<Record>,
    size: u64,
    lba: u32,
}

/// One of the two directory hierarchies (ISO 9660 + Rock Ridge, Joliet).
#[derive(Debug, Default)]
struct Hierarchy {
    dirs: Vec<DirPlan>,
    /// Node → index in `dirs` (usize::MAX for non-directories).
    index: Vec<usize>,
    path_table_size: u64,
    l_table: u32,
    m_table: u32,
}

fn blocks(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK)
}

/// Bytes of a directory extent holding `records` (none crosses a block boundary).
fn packed_size(records: &[Record]) -> u64 {
    let mut pos = 0u64;
    for r in records {
        let len = r.len() as u64;
        if pos % BLOCK + len > BLOCK {
            pos = pos.div_ceil(BLOCK) * BLOCK;
        }
        pos += len;
    }
    pos.div_ceil(BLOCK).max(1) * BLOCK
}

/// Rock Ridge entries of a node.
fn rock_ridge(tree: &Tree, node: usize, date: &[u8; 7], name: bool) -> Vec<Vec<u8>> {
    let n = &tree.nodes[node];
    let mut flags = susp::RR_PX | susp::RR_TF;
    let mut tail = Vec::new();
    match &n.body {
        Body::Symlink(target) => {
            flags |= susp::RR_SL;
            tail.extend(susp::sl(target));
        }
        Body::Special { rdev } if matches!(n.mode & 0o170000, 0o020000 | 0o060000) => {
            flags |= susp::RR_PN;
            tail.push(susp::pn(*rdev));
        }
        _ => {}
    }
    if name {
        flags |= susp::RR_NM;
        tail.extend(susp::nm(&n.name));
    }
    let mut entries = vec![
        susp::rr(flags),
        susp::px(n.mode, n.nlink, n.uid, n.gid),
        susp::tf(date),
    ];
    entries.extend(tail);
    entries
}

/// The records of a file (one per section), a directory or anything else.
fn child_records(
    tree: &Tree,
    node: usize,
    id: &[u8],
    entries: Option<Vec<Vec<u8>>>,
    alloc: &mut AreaAlloc,
) -> Vec<Record> {
    let cap = 254 - (33 + id.len() + (1 - id.len() % 2));
    let mut place = |entries: &Option<Vec<Vec<u8>>>| match entries {
        Some(e) => susp::place(e.clone(), cap, alloc),
        None => Placed::default(),
    };
    match &tree.nodes[node].body {
        Body::Dir { .. } => vec![Record {
            target: Target::Dir(node),
            id: id.to_vec(),
            flags: 2,
            su: place(&entries),
        }],
        Body::File { data } => {
            let size = tree.data[*data].size;
            let sections = size.div_ceil(SECTION_MAX).max(1);
            (0..sections)
                .map(|i| Record {
                    target: Target::Section {
                        data: *data,
                        index: i,
                        len: (size - i * SECTION_MAX).min(SECTION_MAX) as u32,
                    },
                    id: id.to_vec(),
                    flags: if i + 1 < sections { 0x80 } else { 0 },
                    su: place(&entries),
                })
                .collect()
        }
        _ => vec![Record {
            target: Target::Nothing,
            id: id.to_vec(),
            flags: 0,
            su: place(&entries),
        }],
    }
}

/// Plans one hierarchy: directories breadth first (the path table order), children in the
/// hierarchy's sort order.
fn plan_hierarchy(
    tree: &Tree,
    joliet: bool,
    date: &[u8; 7],
    alloc: &mut AreaAlloc,
) -> Result<Hierarchy, Error> {
    let mut h = Hierarchy {
        index: vec![usize::MAX; tree.nodes.len()],
        ..Hierarchy::default()
    };
    h.index[0] = 0;
    h.dirs.push(DirPlan {
        node: 0,
        parent: 1,
        id: vec![0],
        records: Vec::new(),
        size: 0,
        lba: 0,
    });
    let mut at = 0;
    while at < h.dirs.len() {
        let node = h.dirs[at].node;
        let parent_node = tree.nodes[node].parent;
        let mut kids: Vec<usize> = tree
            .children(node)
            .iter()
            .copied()
            .filter(|&c| {
                !joliet || matches!(tree.nodes[c].body, Body::Dir { .. } | Body::File { .. })
            })
            .collect();
        if joliet {
            kids.sort_by(|&a, &b| tree.nodes[a].joliet.cmp(&tree.nodes[b].joliet));
        } else {
            kids.sort_by(|&a, &b| tree.nodes[a].iso_key.cmp(&tree.nodes[b].iso_key));
        }
        let mut records = Vec::with_capacity(kids.len() + 2);
        let (dot, dotdot) = if joliet {
            (None, None)
        } else {
            let mut dot = rock_ridge(tree, node, date, false);
            if node == 0 {
                dot.insert(0, susp::sp());
                dot.push(susp::er());
            }
            (Some(dot), Some(rock_ridge(tree, parent_node, date, false)))
        };
        records.extend(child_records(tree, node, &[0], dot, alloc));
        records.extend(child_records(tree, parent_node, &[1], dotdot, alloc));
        for c in kids {
            let id = if joliet {
                tree.nodes[c]
                    .joliet
                    .iter()
                    .flat_map(|u| u.to_be_bytes())
                    .collect()
            } else {
                tree.nodes[c].iso_id.clone()
            };
            let entries = (!joliet).then(|| rock_ridge(tree, c, date, true));
            records.extend(child_records(tree, c, &id, entries, alloc));
            if tree.nodes[c].is_dir() {
                if h.dirs.len() >= usize::from(u16::MAX) {
                    return Err(Error::Limit(format!(
                        "more than {} directories (path tables number them in 16 bits), at {}",
                        u16::MAX,
                        tree.display_path(c)
                    )));
                }
                h.index[c] = h.dirs.len();
                h.dirs.push(DirPlan {
                    node: c,
                    parent: (at + 1) as u16,
                    id,
                    records: Vec::new(),
                    size: 0,
                    lba: 0,
                });
            }
        }
        h.dirs[at].size = packed_size(&records);
        h.dirs[at].records = records;
        at += 1;
    }
    h.path_table_size = h
        .dirs
        .iter()
        .map(|d| 8 + d.id.len() as u64 + d.id.len() as u64 % 2)
        .sum();
    Ok(h)
}

fn text_field(dst: &mut [u8], text: &str, ucs2: bool) {
    if ucs2 {
        for pair in dst.chunks_mut(2) {
            pair.copy_from_slice(&[0, b' '][..pair.len()]);
        }
        let units: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let n = units.len().min(dst.len() & !1);
        dst[..n].copy_from_slice(&units[..n]);
    } else {
        dst.fill(b' ');
        let n = text.len().min(dst.len());
        dst[..n].copy_from_slice(&text.as_bytes()[..n]);
    }
}

fn both16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

fn put_record(out: &mut Vec<u8>, r: &Record, lba: u32, size: u32, date: &[u8; 7], su: &[u8]) {
    let start = out.len();
    out.push(0);
    out.push(0);
    out.extend_from_slice(&susp::both32(lba));
    out.extend_from_slice(&susp::both32(size));
    out.extend_from_slice(date);
    out.push(r.flags);
    out.push(0);
    out.push(0);
    out.extend_from_slice(&both16(1));
    out.push(r.id.len() as u8);
    out.extend_from_slice(&r.id);
    if r.id.len() % 2 == 0 {
        out.push(0);
    }
    out.extend_from_slice(su);
    if (out.len() - start) % 2 == 1 {
        out.push(0);
    }
    out[start] = (out.len() - start) as u8;
}

struct Plan<'a> {
    opts: &'a IsoOptions,
    tree: Tree,
    date: [u8; 7],
    iso: Hierarchy,
    joliet: Option<Hierarchy>,
    ce_region: u32,
    ce_blocks: u32,
    catalog_lba: Option<u32>,
    /// Data indices in write order.
    order: Vec<usize>,
    bios: Option<usize>,
    efi: Option<usize>,
    volume_blocks: u64,
    total_blocks: u64,
    multi_extent: bool,
}

impl Plan<'_> {
    fn target(&self, h: &Hierarchy, t: Target) -> (u32, u32) {
        match t {
            Target::Dir(node) => {
                let d = &h.dirs[h.index[node]];
                (d.lba, d.size as u32)
            }
            Target::Section { data, index, len } => (
                self.tree.data[data].lba + (index * SECTION_MAX / BLOCK) as u32,
                len,
            ),
            Target::Nothing => (0, 0),
        }
    }

    /// A directory's extent and the continuation areas its records point at.
    fn directory(&self, h: &Hierarchy, d: &DirPlan, ce: &mut [u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(d.size as usize);
        for r in &d.records {
            let len = r.len();
            if out.len() % BLOCK as usize + len > BLOCK as usize {
                out.resize(out.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
            }
            let (lba, size) = self.target(h, r.target);
            let mut su = r.su.record.clone();
            if let Some((_, first)) = r.su.areas.first() {
                su.extend(susp::ce(self.ce_region, first));
            }
            put_record(&mut out, r, lba, size, &self.date, &su);
            for (i, (bytes, area)) in r.su.areas.iter().enumerate() {
                let at = area.block as usize * BLOCK as usize + area.offset as usize;
                ce[at..at + bytes.len()].copy_from_slice(bytes);
                if let Some((_, next)) = r.su.areas.get(i + 1) {
                    let link = susp::ce(self.ce_region, next);
                    ce[at + bytes.len()..at + bytes.len() + link.len()].copy_from_slice(&link);
                }
            }
        }
        out.resize(d.size as usize, 0);
        out
    }

    fn path_table(h: &Hierarchy, big_endian: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(h.path_table_size as usize);
        for d in &h.dirs {
            out.push(d.id.len() as u8);
            out.push(0);
            if big_endian {
                out.extend_from_slice(&d.lba.to_be_bytes());
                out.extend_from_slice(&d.parent.to_be_bytes());
            } else {
                out.extend_from_slice(&d.lba.to_le_bytes());
                out.extend_from_slice(&d.parent.to_le_bytes());
            }
            out.extend_from_slice(&d.id);
            if d.id.len() % 2 == 1 {
                out.push(0);
            }
        }
        out
    }

    /// The primary (type 1) or Joliet supplementary (type 2) volume descriptor.
    fn volume_descriptor(&self, h: &Hierarchy, joliet: bool) -> Vec<u8> {
        let mut v = vec![0u8; BLOCK as usize];
        v[0] = if joliet { 2 } else { 1 };
        v[1..6].copy_from_slice(b"CD001");
        v[6] = 1;
        text_field(&mut v[8..40], "LINUX", joliet);
        text_field(&mut v[40..72], &self.opts.volume_id, joliet);
        v[80..88].copy_from_slice(&susp::both32(self.total_blocks as u32));
        if joliet {
            v[88..91].copy_from_slice(b"%/E");
        }
        v[120..124].copy_from_slice(&both16(1));
        v[124..128].copy_from_slice(&both16(1));
        v[128..132].copy_from_slice(&both16(BLOCK as u16));
        v[132..140].copy_from_slice(&susp::both32(h.path_table_size as u32));
        v[140..144].copy_from_slice(&h.l_table.to_le_bytes());
        v[148..152].copy_from_slice(&h.m_table.to_be_bytes());
        let root = &h.dirs[0];
        let mut rec = Vec::new();
        put_record(
            &mut rec,
            &Record {
                target: Target::Dir(0),
                id: vec![0],
                flags: 2,
                su: Placed::default(),
            },
            root.lba,
            root.size as u32,
            &self.date,
            &[],
        );
        v[156..190].copy_from_slice(&rec);
        text_field(&mut v[190..318], &self.opts.volume_id, joliet);
        text_field(&mut v[318..446], "", joliet);
        text_field(&mut v[446..574], "", joliet);
        text_field(&mut v[574..702], "KILN", joliet);
        text_field(&mut v[702..739], "", joliet);
        text_field(&mut v[739..776], "", joliet);
        text_field(&mut v[776..813], "", joliet);
        let now = time::volume_date(self.opts.identity.unix_time());
        v[813..830].copy_from_slice(&now);
        v[830..847].copy_from_slice(&now);
        v[847..864].copy_from_slice(&time::NO_DATE);
        v[864..881].copy_from_slice(&now);
        v[881] = 1;
        v
    }
}

fn plan<'a>(staged: &Path, opts: &'a IsoOptions) -> Result<Plan<'a>, Error> {
    let id = &opts.volume_id;
    if id.len() > 32 || !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Error::VolumeId(id.clone()));
    }
    let mut tree = Tree::scan(staged)?;
    let booting = opts.bios.is_some() || opts.efi_image.is_some();
    if let Some(path) = &opts.catalog {
        if !booting {
            return Err(Error::Boot(format!(
                "a boot catalog path ({path}) without a boot entry"
            )));
        }
        tree.add_catalog(path)?;
    }
    tree.finish();
    let boot_file = |path: &str, what: &str| -> Result<usize, Error> {
        let node = tree
            .lookup(path)
            .ok_or_else(|| Error::Boot(format!("the {what} {path} is not in the staged tree")))?;
        match tree.nodes[node].body {
            Body::File { data } if matches!(tree.data[data].content, Content::Path(_)) => Ok(data),
            _ => Err(Error::Boot(format!(
                "the {what} {path} is not a regular file"
            ))),
        }
    };
    let bios = match &opts.bios {
        Some(b) => {
            let data = boot_file(&b.image, "BIOS boot image")?;
            let size = tree.data[data].size;
            if b.boot_info_table && !(64..=MAX_PATCHED_BOOT_IMAGE).contains(&size) {
                return Err(Error::Boot(format!(
                    "the BIOS boot image {} has {size} bytes: a boot info table needs 64 bytes to 64 MiB",
                    b.image
                )));
            }
            if b.grub2_boot_info && !(2556..=MAX_PATCHED_BOOT_IMAGE).contains(&size) {
                return Err(Error::Boot(format!(
                    "the BIOS boot image {} has {size} bytes: too small for GRUB's boot info (2556 bytes)",
                    b.image
                )));
            }
            if b.load_size == 0 {
                return Err(Error::Boot("a BIOS load size of 0 sectors".into()));
            }
            Some(data)
        }
        None => None,
    };
    let efi = match &opts.efi_image {
        Some(path) => {
            let data = boot_file(path, "EFI image")?;
            let size = tree.data[data].size;
            if size == 0 || size > MAX_ELTORITO_EFI_IMAGE {
                return Err(Error::Boot(format!(
                    "the EFI image {path} has {size} bytes; an El Torito entry holds 1 to 65535 \
                     sectors of 512 bytes (32 MiB): make it smaller"
                )));
            }
            Some(data)
        }
        None => None,
    };
    if let Some(h) = &opts.hybrid {
        if h.mbr_code.as_ref().is_some_and(|c| c.len() > 512) {
            return Err(Error::Boot("MBR boot code longer than 512 bytes".into()));
        }
        if (h.grub2_mbr || h.isolinux_mbr) && bios.is_none() {
            return Err(Error::Boot(
                "the MBR patch needs a BIOS boot image to point at".into(),
            ));
        }
        if h.grub2_mbr && h.isolinux_mbr {
            return Err(Error::Boot(
                "GRUB's and syslinux's MBR patches exclude each other".into(),
            ));
        }
    }

    let date = time::record_date(opts.identity.unix_time());
    let mut alloc = AreaAlloc::default();
    let mut iso = plan_hierarchy(&tree, false, &date, &mut alloc)?;
    let mut joliet = if opts.joliet {
        Some(plan_hierarchy(&tree, true, &date, &mut alloc)?)
    } else {
        None
    };

    // Volume descriptors from block 16: primary, boot record, Joliet, terminator.
    let mut next: u64 = 17 + u64::from(booting) + u64::from(opts.joliet) + 1;
    let catalog_lba = booting.then(|| {
        next += 1;
        (next - 1) as u32
    });
    for h in std::iter::once(&mut iso).chain(joliet.as_mut()) {
        h.l_table = next as u32;
        next += blocks(h.path_table_size);
        h.m_table = next as u32;
        next += blocks(h.path_table_size);
    }
    for h in std::iter::once(&mut iso).chain(joliet.as_mut()) {
        for d in &mut h.dirs {
            d.lba = next as u32;
            next += d.size / BLOCK;
        }
    }
    let ce_region = next as u32;
    next += u64::from(alloc.blocks);
    // Files in tree order; with a GPT the EFI image last, so its partition follows the data one.
    let mut order: Vec<usize> = (0..tree.data.len())
        .filter(|&d| Some(d) != efi.filter(|_| opts.hybrid.is_some()))
        .collect();
    if let (Some(e), Some(_)) = (efi, &opts.hybrid) {
        order.push(e);
    }
    let mut multi_extent = false;
    for &d in &order {
        let data = &mut tree.data[d];
        match data.content {
            Content::Catalog => data.lba = catalog_lba.unwrap_or(0),
            // Empty files point at block 0, as symlinks do.
            Content::Path(_) if data.size == 0 => data.lba = 0,
            Content::Path(_) => {
                data.lba = next.min(u64::from(u32::MAX)) as u32;
                next += blocks(data.size);
                multi_extent |= data.size > SECTION_MAX;
            }
        }
        if next > u64::from(u32::MAX) {
            return Err(Error::Limit("more than 2^32 blocks of 2048 bytes".into()));
        }
    }
    let volume_blocks = next;
    let total_blocks = next
        + if opts.hybrid.is_some() {
            GPT_TAIL_BLOCKS
        } else {
            0
        };
    if total_blocks > u64::from(u32::MAX) {
        return Err(Error::Limit("more than 2^32 blocks of 2048 bytes".into()));
    }
    Ok(Plan {
        opts,
        tree,
        date,
        iso,
        joliet,
        ce_region,
        ce_blocks: alloc.blocks,
        catalog_lba,
        order,
        bios,
        efi,
        volume_blocks,
        total_blocks,
        multi_extent,
    })
}

/// Copies `src` (`size` bytes, as planned) to `at` in `out`, leaving zero runs unwritten.
fn copy_file(
    (out, output): (&File, &Path),
    src: &Path,
    size: u64,
    at: u64,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let changed = |reason: &str| Error::Changed {
        path: src.to_path_buf(),
        reason: format!("{reason} while the ISO was written (planned {size} bytes)"),
    };
    if size > SMALL_FILE {
        let input = SparseInput::open(src).map_err(io_err("cannot read", src))?;
        if input.len() != size {
            return Err(changed("changed size"));
        }
        return input
            .for_each_data_run(BLOCK, |off, data| out.write_all_at(data, at + off))
            .map_err(io_err("cannot copy", src));
    }
    let mut f = File::open(src).map_err(io_err("cannot open", src))?;
    buf.clear();
    f.by_ref()
        .take(size + 1)
        .read_to_end(buf)
        .map_err(io_err("cannot read", src))?;
    if buf.len() as u64 != size {
        return Err(changed("changed size"));
    }
    write_nonzero((out, output), buf, at)
}

/// Writes the 64 KiB chunks of `data` that hold a non-zero byte.
fn write_nonzero((out, output): (&File, &Path), data: &[u8], at: u64) -> Result<(), Error> {
    const CHUNK: usize = 64 << 10;
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        if !is_zero(chunk) {
            out.write_all_at(chunk, at + (i * CHUNK) as u64)
                .map_err(io_err("cannot write", output))?;
        }
    }
    Ok(())
}

/// Writes the ISO image of the tree `staged` to `output` (under a temporary name, renamed at the
/// end).
pub fn write_iso(staged: &Path, output: &Path, opts: &IsoOptions) -> Result<IsoReport, Error> {
    let plan = plan(staged, opts)?;
    let mut outfile = OutFile::create(output).map_err(io_err("cannot create", output))?;
    let out = outfile.file();
    let wr = |bytes: &[u8], lba: u64| {
        out.write_all_at(bytes, lba * BLOCK)
            .map_err(io_err("cannot write", output))
    };
    out.set_len(plan.total_blocks * BLOCK)
        .map_err(io_err("cannot size", output))?;

    // Volume descriptors.
    let mut vd = 16;
    wr(&plan.volume_descriptor(&plan.iso, false), vd)?;
    if let Some(catalog) = plan.catalog_lba {
        vd += 1;
        wr(&boot::record_descriptor(catalog), vd)?;
    }
    if let Some(j) = &plan.joliet {
        vd += 1;
        wr(&plan.volume_descriptor(j, true), vd)?;
    }
    let mut term = vec![0u8; BLOCK as usize];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    wr(&term, vd + 1)?;

    // Boot catalog.
    let image_lba = |d: Option<usize>| d.map(|d| plan.tree.data[d].lba);
    if let Some(catalog) = plan.catalog_lba {
        let bios = plan
            .opts
            .bios
            .as_ref()
            .zip(image_lba(plan.bios))
            .map(|(b, lba)| (lba, b.load_size));
        let efi = plan.efi.map(|d| {
            let data = &plan.tree.data[d];
            (data.lba, data.size.div_ceil(512) as u16)
        });
        wr(&boot::catalog(bios, efi), u64::from(catalog))?;
    }

    // Path tables, directories, continuation areas.
    let mut ce = vec![0u8; plan.ce_blocks as usize * BLOCK as usize];
    for h in std::iter::once(&plan.iso).chain(plan.joliet.as_ref()) {
        wr(&Plan::path_table(h, false), u64::from(h.l_table))?;
        wr(&Plan::path_table(h, true), u64::from(h.m_table))?;
        for d in &h.dirs {
            wr(&plan.directory(h, d, &mut ce), u64::from(d.lba))?;
        }
    }
    wr(&ce, u64::from(plan.ce_region))?;

    // File contents.
    let mut buf = Vec::new();
    for &d in &plan.order {
        let data = &plan.tree.data[d];
        let Content::Path(src) = &data.content else {
            continue;
        };
        let at = u64::from(data.lba) * BLOCK;
        match (Some(d) == plan.bios, &plan.opts.bios) {
            (true, Some(b)) if b.boot_info_table || b.grub2_boot_info => {
                let mut image = std::fs::read(src).map_err(io_err("cannot read", src.as_path()))?;
                if image.len() as u64 != data.size {
                    return Err(Error::Changed {
                        path: src.clone(),
                        reason: "changed size while the ISO was written".into(),
                    });
                }
                if b.grub2_boot_info {
                    boot::patch_grub2_boot_info(&mut image, data.lba);
                }
                if b.boot_info_table {
                    boot::patch_boot_info_table(&mut image, data.lba);
                }
                write_nonzero((out, output), &image, at)?;
            }
            _ => copy_file((out, output), src.as_path(), data.size, at, &mut buf)?,
        }
    }

    // The disk view.
    let efi_range = plan.efi.map(|d| {
        let data = &plan.tree.data[d];
        (u64::from(data.lba) * BLOCK, data.size)
    });
    if let Some(h) = &plan.opts.hybrid {
        boot::write_hybrid(
            out,
            h,
            &plan.opts.identity,
            plan.total_blocks * BLOCK,
            plan.volume_blocks * BLOCK,
            efi_range,
            image_lba(plan.bios),
        )
        .map_err(io_err("cannot write the partition tables of", output))?;
    }
    outfile.commit().map_err(io_err("cannot write", output))?;
    Ok(IsoReport {
        size: plan.total_blocks * BLOCK,
        directories: plan.iso.dirs.len(),
        files: plan
            .tree
            .data
            .iter()
            .filter(|d| matches!(d.content, Content::Path(_)))
            .count(),
        multi_extent: plan.multi_extent,
        efi_image: efi_range,
    })
}
