#!/usr/bin/env python3
"""An independent reading of a kiln-crypt partition, written from the LUKS1 On-Disk Format
Specification 1.2.3 and lvm2's on-disk layout with Python's hashlib and the `cryptography`
package (OpenSSL): no code shared with kiln.

    luks_lvm_check.py PARTITION PASSPHRASE_FILE PLAIN_OUT

Parses the LUKS1 header, derives the key slot keys with PBKDF2, decrypts the key material with
AES-XTS, merges the AF stripes, checks the master key digest, decrypts the whole payload into
PLAIN_OUT (the decrypted device), then reads the LVM2 label, metadata area header and text
metadata from it (checking every CRC). Prints one JSON object; exits 1 on any mismatch.
"""
import hashlib, json, struct, sys, zlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SECTOR = 512


def fail(msg):
    print(json.dumps({"error": msg}))
    sys.exit(1)


def xts(key, data, first_sector, decrypt=True):
    out = bytearray()
    for i in range(0, len(data), SECTOR):
        tweak = (first_sector + i // SECTOR).to_bytes(16, "little")
        c = Cipher(algorithms.AES(key), modes.XTS(tweak))
        op = c.decryptor() if decrypt else c.encryptor()
        out += op.update(data[i:i + SECTOR]) + op.finalize()
    return bytes(out)


def af_merge(material, key_len, stripes, hash_name):
    dlen = hashlib.new(hash_name).digest_size

    def diffuse(block):
        out = b""
        for i in range(0, len(block), dlen):
            piece = block[i:i + dlen]
            out += hashlib.new(hash_name, struct.pack(">I", i // dlen) + piece).digest()[:len(piece)]
        return out

    d = bytes(key_len)
    for s in range(stripes - 1):
        block = material[s * key_len:(s + 1) * key_len]
        d = diffuse(bytes(a ^ b for a, b in zip(d, block)))
    last = material[(stripes - 1) * key_len:stripes * key_len]
    return bytes(a ^ b for a, b in zip(d, last))


def lvm_crc(data):
    # lvm2's calc_crc: CRC-32 register started at 0xf597a6cf, no final inversion; zlib.crc32
    # inverts before and after.
    return zlib.crc32(data, 0xf597a6cf ^ 0xffffffff) ^ 0xffffffff


def main():
    part_path, pass_path, plain_path = sys.argv[1:4]
    passphrase = open(pass_path, "rb").read()
    with open(part_path, "rb") as f:
        hdr = f.read(592)
        if hdr[:6] != b"LUKS\xba\xbe":
            fail("no LUKS magic")
        version, = struct.unpack(">H", hdr[6:8])
        cstr = lambda b: b.split(b"\0", 1)[0].decode()
        cipher, mode, hash_name = cstr(hdr[8:40]), cstr(hdr[40:72]), cstr(hdr[72:104])
        payload, key_bytes = struct.unpack(">II", hdr[104:112])
        mk_digest, mk_salt = hdr[112:132], hdr[132:164]
        mk_iter, = struct.unpack(">I", hdr[164:168])
        uuid = cstr(hdr[168:208])
        slots = []
        for i in range(8):
            active, iters = struct.unpack(">II", hdr[208 + 48 * i:216 + 48 * i])
            salt = hdr[216 + 48 * i:248 + 48 * i]
            off, stripes = struct.unpack(">II", hdr[248 + 48 * i:256 + 48 * i])
            slots.append((active, iters, salt, off, stripes))
        if (version, cipher, mode) != (1, "aes", "xts-plain64"):
            fail(f"unexpected header {version} {cipher} {mode}")
        master, opened = None, None
        for i, (active, iters, salt, off, stripes) in enumerate(slots):
            if active != 0x00AC71F3:
                continue
            derived = hashlib.pbkdf2_hmac(hash_name, passphrase, salt, iters, key_bytes)
            n = (key_bytes * stripes + SECTOR - 1) // SECTOR * SECTOR
            f.seek(off * SECTOR)
            material = xts(derived, f.read(n), 0)
            key = af_merge(material, key_bytes, stripes, hash_name)
            if hashlib.pbkdf2_hmac(hash_name, key, mk_salt, mk_iter, 20) == mk_digest:
                master, opened = key, i
                break
        if master is None:
            fail("no key slot opens with this passphrase")
        # Decrypt the payload, 1 MiB at a time.
        f.seek(payload * SECTOR)
        sector = 0
        with open(plain_path, "wb") as out:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                out.write(xts(master, chunk, sector))
                sector += len(chunk) // SECTOR
    device_size = sector * SECTOR

    with open(plain_path, "rb") as p:
        head = p.read(1 << 20)
    label = head[512:1024]
    if label[:8] != b"LABELONE" or label[24:32] != b"LVM2 001":
        fail("no LVM label in sector 1")
    lsector, lcrc, loff = struct.unpack("<QII", label[8:24])
    if lsector != 1 or lcrc != lvm_crc(label[20:]) or loff != 32:
        fail(f"bad label: sector {lsector} crc {lcrc:#x} offset {loff}")
    pv_uuid = label[32:64].decode()
    dev_size, = struct.unpack("<Q", label[64:72])
    areas, at = [[], []], 72
    for lst in areas:
        while True:
            o, s = struct.unpack("<QQ", label[at:at + 16])
            at += 16
            if o == 0 and s == 0:
                break
            lst.append((o, s))
    ext_version, ext_flags = struct.unpack("<II", label[at:at + 8])
    (da_off, da_size), = areas[0]
    (mda_off, mda_size), = areas[1]
    mda = head[mda_off:mda_off + 512]
    mcrc, = struct.unpack("<I", mda[:4])
    if mcrc != lvm_crc(mda[4:]) or mda[4:20] != b" LVM2 x[5A%r0N*>":
        fail("bad metadata area header")
    mversion, mstart, msize, roff, rsize, rcrc, rflags = struct.unpack("<IQQQQII", mda[20:64])
    text = head[mda_off + roff:mda_off + roff + rsize]
    if rcrc != lvm_crc(text) or text[-1:] != b"\0":
        fail("bad metadata text checksum")
    text = text[:-1].decode()
    print(json.dumps({
        "luks": {"uuid": uuid, "hash": hash_name, "payload_offset": payload, "key_bytes": key_bytes,
                 "opened_slot": opened},
        "device_size": device_size,
        "lvm": {"pv_uuid": pv_uuid, "label_device_size": dev_size, "data_area": [da_off, da_size],
                "metadata_area": [mda_off, mda_size], "ext_version": ext_version,
                "ext_flags": ext_flags, "mda_version": mversion, "mda_start": mstart,
                "mda_size": msize, "text_offset": roff, "text_size": rsize, "text": text},
    }))


main()
