#!/usr/bin/env python3
"""Builds kiln's realistic distribution: Debian 12 binaries repackaged as RPMs under Azure Linux
3.0's package names, indexed by createrepo_c.

    azl-distro/build.py [--out out/RPMS] [--jobs 2] [--force]

Inputs: azl-distro/packages.toml (the package map), azl-distro/macros (Azure Linux's scriptlet
macros), this script, and the exact Debian versions apt offers. Debian packages are downloaded
into a machine-wide cache, /var/cache/kiln/debs/<package>_<version>_<arch>.deb ($KILN_DEB_CACHE),
kept across builds. The output is rebuilt only when the cache key (over all inputs) changes, and
appears under --out only when complete. Python 3.11 standard library only; needs apt-get,
dpkg-deb, rpmbuild, createrepo_c and grub-mkimage.
"""
import argparse
import concurrent.futures
import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1767225600"))
DEB_CACHE = os.environ.get("KILN_DEB_CACHE", "/var/cache/kiln/debs")
STAMP = ".kiln-azl-distro"
# Finished repositories on this machine, keyed by the cache key (`make clean-downloads`
# empties it with the deb cache).
REPO_CACHE = os.environ.get("KILN_DISTRO_CACHE", "/var/cache/kiln/azl-distro")
REPO_CACHE_KEEP = 3


def log(msg):
    print(f"azl-distro: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- Debian's package index


def dpkg_cmp(a, b):
    """Debian version comparison (dpkg's algorithm)."""

    def split(v):
        ep, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(ep or 0), up, rev

    def order(c):
        if c == "~":
            return -1
        if c.isdigit():
            return 0
        if c.isalpha():
            return ord(c)
        return ord(c) + 256

    def cmp_part(x, y):
        while x or y:
            nx = re.match(r"^[^0-9]*", x).group(0)
            ny = re.match(r"^[^0-9]*", y).group(0)
            for i in range(max(len(nx), len(ny)) + 1):
                cx = order(nx[i]) if i < len(nx) else 0
                cy = order(ny[i]) if i < len(ny) else 0
                if cx != cy:
                    return (cx > cy) - (cx < cy)
            x, y = x[len(nx):], y[len(ny):]
            dx = re.match(r"^[0-9]*", x).group(0)
            dy = re.match(r"^[0-9]*", y).group(0)
            ix, iy = int(dx or 0), int(dy or 0)
            if ix != iy:
                return (ix > iy) - (ix < iy)
            x, y = x[len(dx):], y[len(dy):]
        return 0

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return (ea > eb) - (ea < eb)
    return cmp_part(ua, ub) or cmp_part(ra, rb)


UNAVAILABLE = os.path.join(DEB_CACHE, "unavailable.json")


def load_unavailable():
    try:
        with open(UNAVAILABLE) as f:
            return set(json.load(f))
    except (OSError, ValueError):
        return set()


def load_index():
    """The newest version of every Debian package in apt's lists (downloadable, unlike dpkg's
    status), and who provides what."""
    unavailable = load_unavailable()
    lists = subprocess.run(["apt-get", "indextargets", "--format", "$(FILENAME)",
                            "Created-By: Packages"], check=True, capture_output=True,
                           text=True).stdout.split()
    lists = [f for f in lists if os.path.exists(f)]
    if not lists:
        return {}, {}
    text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file"] + lists, check=True,
                          capture_output=True, text=True).stdout
    pkgs, provides = {}, {}
    for para in text.split("\n\n"):
        fields, key = {}, None
        for line in para.splitlines():
            if line[:1] in (" ", "\t"):
                if key:
                    fields[key] += "\n" + line
                continue
            key, _, val = line.partition(":")
            fields[key] = val.strip()
        name = fields.get("Package")
        if not name or fields.get("Architecture") not in ("amd64", "all"):
            continue
        if f"{name}={fields['Version']}" in unavailable:
            continue  # listed, but the archive does not have it (see download())
        old = pkgs.get(name)
        if old and dpkg_cmp(old["Version"], fields["Version"]) >= 0:
            continue
        pkgs[name] = fields
    for name, f in pkgs.items():
        for p in f.get("Provides", "").split(","):
            p = p.strip().split(" ")[0]
            if p:
                provides.setdefault(p, []).append(name)
    return pkgs, provides


def dep_clauses(fields):
    out = []
    for key in ("Pre-Depends", "Depends"):
        for clause in fields.get(key, "").split(","):
            alts = [re.sub(r"\s*\(.*?\)", "", a).strip().split(":")[0]
                    for a in clause.split("|")]
            alts = [a for a in alts if a]
            if alts:
                out.append(alts)
    return out


def closure(roots, pkgs, provides, exclude, prefer):
    """The Debian dependency closure of roots (Pre-Depends and Depends, no Recommends), choosing
    among alternatives as apt would: one already chosen, else the map's preference, else the
    first real package."""
    chosen, todo = set(), list(roots)
    for r in roots:
        if r not in pkgs:
            die(f"Debian has no package {r} (named in the package map)")

    def pick(alts):
        for a in alts:
            if a in chosen or any(p in chosen for p in provides.get(a, [])):
                return None
        for a in alts:
            if a in prefer:
                return prefer[a]
        for a in alts:
            if a in exclude:
                continue
            if a in pkgs:
                return a
            provs = [q for q in sorted(provides.get(a, [])) if q not in exclude]
            if provs:
                return provs[0]
        return None

    while todo:
        name = todo.pop()
        if name in chosen or name in exclude:
            continue
        chosen.add(name)
        for alts in dep_clauses(pkgs[name]):
            p = pick(alts)
            if p and p not in chosen and p not in exclude:
                todo.append(p)
    return chosen


# ---------------------------------------------------------------- downloads and payloads


def deb_path(name, fields):
    ver = fields["Version"].replace(":", "%3a")
    return os.path.join(DEB_CACHE, f"{name}_{ver}_{fields['Architecture']}.deb")


def download(names, pkgs):
    """Downloads what the cache lacks. Returns the number downloaded, or None when a version
    apt lists is missing from the archive (it is then recorded, and the caller picks again)."""
    os.makedirs(DEB_CACHE, exist_ok=True)
    missing = [n for n in sorted(names) if not os.path.exists(deb_path(n, pkgs[n]))]
    if not missing:
        return 0
    log(f"downloading {len(missing)} Debian packages into {DEB_CACHE}")
    tmp = os.path.join(DEB_CACHE, f".partial-{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    bad = set()
    try:
        def get(chunk):
            return subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root"]
                                  + [f"{n}={pkgs[n]['Version']}" for n in chunk], cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(0, len(missing), 100):
            chunk = missing[i:i + 100]
            if get(chunk).returncode != 0:
                for n in chunk:  # one at a time, to find the missing ones
                    if not os.path.exists(os.path.join(tmp, os.path.basename(deb_path(n, pkgs[n])))):
                        r = get([n])
                        if r.returncode != 0:
                            log(f"{n} {pkgs[n]['Version']} cannot be downloaded: "
                                f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
                            bad.add(f"{n}={pkgs[n]['Version']}")
        for n in missing:
            src = os.path.join(tmp, os.path.basename(deb_path(n, pkgs[n])))
            if os.path.exists(src):
                os.replace(src, deb_path(n, pkgs[n]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if bad:
        with open(UNAVAILABLE + ".tmp", "w") as f:
            json.dump(sorted(load_unavailable() | bad), f, indent=1)
        os.replace(UNAVAILABLE + ".tmp", UNAVAILABLE)
        return None
    return len(missing)


MERGE = [("/lib64/", "/usr/lib/"), ("/usr/lib64/", "/usr/lib/"), ("/bin/", "/usr/bin/"),
         ("/sbin/", "/usr/sbin/"), ("/lib/", "/usr/lib/"), ("/var/run/", "/run/"),
         ("/var/lock/", "/run/lock/")]


def merged(path):
    """Azure Linux's merged /usr: /bin, /sbin, /lib and /lib64 live under /usr."""
    for old, new in MERGE:
        if path + "/" == old:
            return new[:-1]
        if path.startswith(old):
            return new + path[len(old):]
    return path


def unpack(name, deb, dest):
    """Unpacks a .deb with merged /usr. Returns {path: entry} with tar metadata (owners)."""
    entries = {}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
        for m in tf:
            orig = "/" + os.path.normpath(m.name).lstrip("./").lstrip("/")
            if orig == "/.":
                continue
            path = merged(orig)
            e = {"orig": orig, "uname": m.uname or "root", "gname": m.gname or "root",
                 "mode": m.mode, "deb": name}
            target = dest + path
            if m.isdir():
                e["type"] = "dir"
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target):
                    # /bin/x and /usr/bin/x in one package: keep the real file.
                    if m.issym():
                        continue
                    os.unlink(target)
                if m.issym():
                    e["type"] = "link"
                    os.symlink(m.linkname, target)
                elif m.islnk():
                    e["type"] = "file"
                    src = dest + merged("/" + os.path.normpath(m.linkname).lstrip("./"))
                    os.link(src, target)
                else:
                    e["type"] = "file"
                    with tf.extractfile(m) as f, open(target, "wb") as out:
                        shutil.copyfileobj(f, out)
                    os.chmod(target, m.mode & 0o7777)
            entries[path] = e
    if proc.wait() != 0:
        die(f"dpkg-deb failed on {deb}")
    return entries


# ---------------------------------------------------------------- the package map


def rpm_evr_from_debian(v):
    epoch, _, rest = v.rpartition(":") if ":" in v else ("", "", v)
    up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "1")
    clean = lambda s: re.sub(r"[^A-Za-z0-9._+~^]", "_", s)
    return epoch, clean(up), clean(rev)


def load_map():
    with open(os.path.join(HERE, "packages.toml"), "rb") as f:
        m = tomllib.load(f)
    return m


def glob_match(path, patterns):
    for p in patterns:
        if fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p.rstrip("/") + "/*"):
            return True
    return False


def spec_quote(path):
    p = path.replace("%", "%%")
    p = re.sub(r"([\[*?{}])", r"[\1]", p)  # a glob's bracket expression matches itself
    return f'"{p}"'


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


LIB_DIRS = ("/usr/lib/", "/usr/lib/x86_64-linux-gnu/")


class Pkg:
    def __init__(self, name, conf, defaults):
        self.name = name
        self.conf = conf
        self.debs = list(conf.get("debian", []))
        self.take = list(conf.get("take", []))
        self.drop = list(defaults.get("drop", [])) + list(conf.get("drop", []))
        self.keep = list(defaults.get("keep", [])) + list(conf.get("keep", []))


def build_pkg(p, stage, meta, fs_dirs, work, macros_file, payload_hint, uname_r):
    """Writes the spec for one RPM (files taken from its stage directory) and runs rpmbuild."""
    c = p.conf
    files, dirs = [], []
    old_paths = []
    has_lib = False
    for root, dnames, fnames in os.walk(stage):
        dnames.sort()
        rel_root = root[len(stage):] or "/"
        for d in dnames:
            path = os.path.join(rel_root, d)
            full = stage + path
            if os.path.islink(full):
                fnames.append(d)
                continue
            if path in fs_dirs and p.name != "filesystem":
                continue
            dirs.append(path)
        for fn in sorted(fnames):
            path = os.path.join(rel_root, fn)
            files.append(path)
    lines = []
    for path in dirs:
        e = meta.get(path, {})
        st = os.lstat(stage + path)
        lines.append(f"%dir %attr({stat.S_IMODE(st.st_mode):04o},{e.get('uname', 'root')},"
                     f"{e.get('gname', 'root')}) {spec_quote(path)}")
    for path in files:
        e = meta.get(path, {})
        full = stage + path
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            attr = "%attr(-,root,root)"
        else:
            mode = stat.S_IMODE(st.st_mode)
            attr = f"%attr({mode:04o},{e.get('uname', 'root')},{e.get('gname', 'root')})"
            if is_elf(full) and (path.startswith(LIB_DIRS) or "/lib/" in path) and ".so" in path:
                has_lib = True
        prefix = ""
        if path.startswith("/etc/") and not stat.S_ISLNK(st.st_mode):
            prefix = "%config(noreplace) "
        if path in c.get("ghost", []):
            prefix = "%ghost " + prefix
        lines.append(f"{prefix}{attr} {spec_quote(path)}")
        orig = e.get("orig", path)
        if orig != path and (orig.startswith("/bin/") or orig.startswith("/sbin/")):
            old_paths.append(orig)
    for g in c.get("ghost", []):
        if not os.path.lexists(stage + g):
            lines.append(f"%ghost {spec_quote(g)}")

    ev = c["evr"]
    epoch, version, release = ev
    head = [f"Name: {p.name}", f"Version: {version}", f"Release: {release}"]
    if epoch:
        head.append(f"Epoch: {epoch}")
    summary = c.get("summary") or p.name
    head += [f"Summary: {summary}", f"License: {c.get('license', 'Distributable')}",
             "URL: https://github.com/microsoft/azurelinux",
             "Vendor: kiln (Debian 12 binaries, Azure Linux 3.0 names)"]
    if c.get("arch") == "noarch" or (not files and not dirs and c.get("meta")):
        pass  # Azure Linux's meta packages are arch-specific too
    for key, vals in c.items():
        tm = re.fullmatch(r"(provides|requires|recommends|conflicts|obsoletes|suggests)"
                          r"(\(\w+\))?", key)
        for v in vals if tm else []:
            head.append(f"{key.capitalize()}: {v}")
    for v in sorted(set(old_paths)):
        head.append(f"Provides: {v}")
    # Azure's specs say %{?systemd_requires} beside %systemd_post: systemd (and through it the
    # presets) is installed first, so a unit is enabled or not as the presets say.
    if "%systemd_post" in c.get("scriptlets", "") and p.name != "systemd":
        head += ["Requires(post): systemd", "Requires(preun): systemd",
                 "Requires(postun): systemd"]
    excl = c.get("requires_exclude", [])
    if excl:
        head.append("%global __requires_exclude ^(" + "|".join(excl) + ")")
    if c.get("autoreq") is False:
        head.append("AutoReq: no")
    desc = c.get("description") or summary
    if p.debs:
        desc += "\n\nRepackaged from Debian 12: " + ", ".join(
            f"{d} {c['debian_versions'][d]}" for d in p.debs) + "."
    scripts = c.get("scriptlets", "")
    if has_lib and c.get("ldconfig", True):
        if not re.search(r"^%post\s*$|^%post\s+-p", scripts, re.M):
            scripts += "\n%post -p /sbin/ldconfig\n"
        if not re.search(r"^%postun\s*$|^%postun\s+-p", scripts, re.M):
            scripts += "\n%postun -p /sbin/ldconfig\n"
    spec = "\n".join(head) + f"""

%description
{desc}

%install
# The buildroot is the prepared stage directory.

{scripts}

%files
""" + "\n".join(lines) + "\n"
    topdir = os.path.join(work, "rpmbuild", p.name)
    os.makedirs(topdir, exist_ok=True)
    specfile = os.path.join(topdir, p.name + ".spec")
    with open(specfile, "w") as f:
        f.write(spec)
    payload = "w19.zstdio" if payload_hint < 8 << 20 else "w7.zstdio"
    cmd = ["rpmbuild", "-bb", "--quiet", specfile, "--load", macros_file,
           "--buildroot", stage,
           "--define", f"_topdir {topdir}",
           "--define", "__spec_install_pre %{___build_pre}",
           "--define", "_buildhost kiln-azl-distro",
           "--define", f"uname_r {uname_r}",
           "--define", "use_source_date_epoch_as_buildtime 1",
           "--define", "clamp_mtime_to_source_date_epoch 1",
           "--define", "_build_id_links none",
           "--define", "debug_package %{nil}",
           "--define", "__os_install_post %{nil}",
           "--define", f"_binary_payload {payload}",
           "--define", "_binary_filedigest_algorithm 8",
           "--noclean"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if time.time() - t0 > 20:
        log(f"{p.name}: rpmbuild took {time.time() - t0:.0f} s")
    if r.returncode != 0:
        die(f"rpmbuild failed for {p.name}:\n{r.stderr[-4000:]}\n(spec: {specfile})")
    out = []
    for root, _, fnames in os.walk(os.path.join(topdir, "RPMS")):
        out += [os.path.join(root, f) for f in fnames if f.endswith(".rpm")]
    return out


def copy_tree(src, dst):
    """A copy of the repository `src` at `dst` (hard links when on one filesystem: RPMs are
    never changed in place)."""
    shutil.rmtree(dst, ignore_errors=True)
    r = subprocess.run(["cp", "-al", src, dst], capture_output=True)
    if r.returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
    return dst


def publish(tmp, out):
    """Gives the complete repository `tmp` the name `out`, replacing what was there."""
    if os.path.exists(out):
        old = out + f".old.{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        os.rename(tmp, out)


def store_in_cache(repo, key):
    """Keeps the repository in the machine-wide cache under its key (the newest REPO_CACHE_KEEP
    keys stay), so another clone or CI run on this machine copies it instead of building it."""
    try:
        os.makedirs(REPO_CACHE, exist_ok=True)
        dest = os.path.join(REPO_CACHE, key)
        if not os.path.exists(dest):
            tmp = copy_tree(repo, os.path.join(REPO_CACHE, f".tmp.{key}.{os.getpid()}"))
            os.rename(tmp, dest)
        os.utime(dest)
        entries = sorted((e for e in os.listdir(REPO_CACHE) if not e.startswith(".")),
                         key=lambda e: os.stat(os.path.join(REPO_CACHE, e)).st_mtime)
        for e in entries[:-REPO_CACHE_KEEP]:
            shutil.rmtree(os.path.join(REPO_CACHE, e), ignore_errors=True)
    except OSError as e:
        log(f"warning: the repository was not kept in {REPO_CACHE}: {e}")


def main_again():
    global RETRIES
    RETRIES += 1
    if RETRIES > 5:
        die("Debian packages keep failing to download")
    return main()


RETRIES = 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(TOP, "out", "RPMS"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    start = time.time()
    os.environ["SOURCE_DATE_EPOCH"] = str(EPOCH)
    for tool, deb in (("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c"),
                      ("dpkg-deb", "dpkg"), ("apt-get", "apt"), ("grub-mkimage", "grub-common"),
                      ("gcc", "gcc")):
        if not shutil.which(tool):
            die(f"{tool} is missing: install the Debian package {deb} "
                "(scripts/install-host-deps.sh distro)")

    m = load_map()
    defaults = m.get("defaults", {})
    pkgs_conf = m["package"]
    pkgs, provides = load_index()
    if "bash" not in pkgs:
        log("refreshing the package lists (apt-get update)")
        run(["apt-get", "update", "-qq"])
        pkgs, provides = load_index()
    debian = m.get("debian", {})
    exclude = set(debian.get("exclude", []))
    prefer = debian.get("prefer", {})
    # "@meta" names the package a Debian meta package depends on (the kernel's versioned name).
    for c in pkgs_conf.values():
        c["debian"] = [dep_clauses(pkgs[d[1:]])[0][0] if d.startswith("@") and d[1:] in pkgs
                       else d
                       for d in c.get("debian", [])]
        c["take"] = [(dep_clauses(pkgs[t[1:].split(":")[0]])[0][0] + ":" + t.split(":", 1)[1])
                     if t.startswith("@") else t for t in c.get("take", [])]
    # A package whose Debian source the archive lacks is left out (and listed in unavailable.txt):
    # a config needing it then fails with "nothing provides".
    skipped = {}
    for name, c in list(pkgs_conf.items()):
        srcs = c["debian"] + [t.split(":", 1)[0] for t in c["take"]]
        gone = [d for d in srcs if d not in pkgs]
        if gone:
            skipped[name] = gone
            log(f"warning: leaving out {name}: Debian's {', '.join(gone)} cannot be downloaded")
            del pkgs_conf[name]
    kernel_deb = pkgs_conf.get("kernel", {}).get("debian", [""])[0]
    uname_r = kernel_deb.removeprefix("linux-image-")
    # Debian packages named by the map, and the Azure package that carries each.
    owner = {}
    for name, c in pkgs_conf.items():
        for d in c.get("debian", []):
            if d in owner:
                die(f"Debian package {d} is in both {owner[d]} and {name}")
            owner[d] = name
        for t in c.get("take", []):
            d = t.split(":", 1)[0]
            if d not in pkgs:
                die(f"{name} takes files from {d}, which Debian does not have")
    roots = set(owner) | {t.split(":", 1)[0] for c in pkgs_conf.values() for t in c.get("take", [])}
    debs = closure(sorted(roots), pkgs, provides, exclude, prefer)
    downloaded = download(debs, pkgs)
    if downloaded is None:
        log("falling back to older versions of what the archive lacks")
        return main_again()
    t_dl = time.time()
    versions = {d: pkgs[d]["Version"] for d in sorted(debs)}

    h = hashlib.sha256()
    for fn in ("build.py", "packages.toml", "macros"):
        with open(os.path.join(HERE, fn), "rb") as f:
            h.update(f.read())
    for d, v in versions.items():
        h.update(f"{d} {v}\n".encode())
    h.update(str(EPOCH).encode())
    key = h.hexdigest()
    stamp = os.path.join(out, STAMP)
    if not args.force and os.path.exists(stamp) and open(stamp).read().strip() == key:
        store_in_cache(out, key)
        log(f"up to date: {out} ({time.time() - start:.1f} s)")
        return
    # A repository built before on this machine from the same inputs (another clone, CI).
    cached = os.path.join(REPO_CACHE, key)
    if not args.force and os.path.exists(os.path.join(cached, STAMP)):
        publish(copy_tree(cached, out + f".tmp.{os.getpid()}"), out)
        log(f"{out}: copied from the machine's cache {cached} ({time.time() - start:.1f} s)")
        return

    work = os.path.join(TOP, "out", ".azl-distro-work")
    # Unpacked payloads are kept between builds (keyed by package and version).
    for sub in ("stage", "rpmbuild"):
        shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
    unpack_root = os.path.join(work, "unpack")
    os.makedirs(unpack_root, exist_ok=True)
    wanted = {f"{d}_{pkgs[d]['Version']}" for d in debs}
    for old in os.listdir(unpack_root):
        if old.removesuffix(".json") not in wanted:
            p = os.path.join(unpack_root, old)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
    log(f"unpacking {len(debs)} Debian packages")
    unpacked, meta = {}, {}

    def do_unpack(d):
        dest = os.path.join(unpack_root, f"{d}_{pkgs[d]['Version']}")
        if os.path.exists(dest + ".json"):
            with open(dest + ".json") as f:
                return d, dest, json.load(f)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        entries = unpack(d, deb_path(d, pkgs[d]), dest)
        with open(dest + ".json", "w") as f:
            json.dump(entries, f)
        return d, dest, entries

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        for d, dest, entries in ex.map(do_unpack, sorted(debs)):
            unpacked[d] = (dest, entries)

    links = os.path.join(work, "unpack-links")
    shutil.rmtree(links, ignore_errors=True)
    os.makedirs(links)
    for d, (dest, _) in unpacked.items():
        os.symlink(dest, os.path.join(links, d))

    # Every RPM: the map's entries, and one per unmapped Debian package in the closure.
    rpms = {}
    for name, c in pkgs_conf.items():
        c = dict(c)
        if "version" in c:
            ver = c["version"]
            ep, _, vr = ver.rpartition(":") if ":" in ver else ("", "", ver)
            v, _, r = vr.rpartition("-")
            c["evr"] = (ep, v, r + m["defaults"].get("dist", ".azl3"))
        else:
            c["evr"] = rpm_evr_from_debian(pkgs[c["debian"][0]]["Version"])
        c["debian_versions"] = {d: pkgs[d]["Version"] for d in c.get("debian", [])}
        rpms[name] = Pkg(name, c, defaults)
    take_only = {t.split(":", 1)[0] for c in pkgs_conf.values() for t in c.get("take", [])}
    for d in sorted(debs):
        if d in owner or d in take_only:
            continue  # a package only claimed from: the rest of its payload is not used
        if d in rpms:
            die(f"Debian package {d} is not in the map but its name is an Azure package's")
        desc = pkgs[d].get("Description", d).split("\n")[0]
        c = {"evr": rpm_evr_from_debian(pkgs[d]["Version"]), "debian": [d], "summary": desc,
             "debian_versions": {d: pkgs[d]["Version"]}}
        rpms[d] = Pkg(d, c, defaults)

    # Which RPM each file goes to: claims ("take") first, then the Debian package's RPM.
    assign = {}  # (deb, path) -> rpm
    for p in rpms.values():
        for t in p.take:
            d, pat = t.split(":", 1)
            if d not in unpacked:
                continue
            hits = [path for path in unpacked[d][1] if glob_match(path, [pat])]
            if not hits:
                die(f"{p.name}: take {t} matches nothing")
            for path in hits:
                if unpacked[d][1][path]["type"] != "dir":
                    assign[(d, path)] = p.name

    def kver(p):
        """The kernel release a package's $KVER and %{uname_r} name: its own kernel's (a
        linux-image-* payload, as kernel-hwe), else the kernel package's."""
        own = [d for d in p.debs if d.startswith("linux-image-")]
        return own[0].removeprefix("linux-image-") if own else uname_r

    # Stage directories.
    stage_root = os.path.join(work, "stage")
    seen = {}
    for p in rpms.values():
        stage = os.path.join(stage_root, p.name)
        os.makedirs(stage)
        sources = list(dict.fromkeys([(d, None) for d in p.debs] + [
            (t.split(":", 1)[0], p.name) for t in p.take]))
        dropped = set()
        for d, claim in sources:
            dest, entries = unpacked[d]
            for path, e in sorted(entries.items()):
                if claim is None and assign.get((d, path), p.name) != p.name:
                    continue
                if claim is not None and assign.get((d, path)) != p.name:
                    continue
                if glob_match(path, p.drop) and not glob_match(path, p.keep):
                    dropped.add(os.path.dirname(path))
                    continue
                target = stage + path
                if e["type"] == "dir":
                    if claim is None:
                        os.makedirs(target, exist_ok=True)
                        meta.setdefault(path, e)
                    continue
                if path in seen and seen[path] != p.name:
                    log(f"warning: {path} is in {seen[path]} and {p.name}: kept in {seen[path]}")
                    continue
                seen[path] = p.name
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if e["type"] == "link":
                    os.symlink(os.readlink(dest + path), target)
                else:
                    os.link(dest + path, target)
                meta[path] = e
        # Shared objects are executable, as Azure Linux ships them (and as rpm's elfdeps needs).
        for root, _, fnames in os.walk(stage):
            for fn in fnames:
                full = os.path.join(root, fn)
                if ".so" in fn and not os.path.islink(full) and is_elf(full):
                    os.chmod(full, os.lstat(full).st_mode | 0o111)
        # Remove the directories that drops left empty (Debian's own empty ones stay).
        parents = set()
        for d in dropped:
            while d not in ("/", ""):
                parents.add(d)
                d = os.path.dirname(d)
        for root, dnames, fnames in os.walk(stage, topdown=False):
            rel = root[len(stage):]
            if rel in parents and not os.listdir(root):
                os.rmdir(root)
        script = p.conf.get("install")
        if script:
            env = dict(os.environ, ROOT=stage, HERE=HERE, NAME=p.name, KVER=kver(p),
                       UNPACK=os.path.join(work, "unpack-links"))
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=stage, env=env,
                               capture_output=True, text=True)
            if r.returncode != 0:
                die(f"{p.name}: install script failed:\n{r.stdout}{r.stderr}")
    fs_dirs = set()
    fs_stage = os.path.join(stage_root, "filesystem")
    for root, dnames, fnames in os.walk(fs_stage):
        for d in dnames + fnames:
            fs_dirs.add(os.path.join(root, d)[len(fs_stage):])

    macros_file = os.path.join(HERE, "macros")
    log(f"building {len(rpms)} RPMs with {args.jobs} jobs")

    def size(stage):
        total = 0
        for root, _, fnames in os.walk(stage):
            for fn in fnames:
                total += os.lstat(os.path.join(root, fn)).st_size
        return total

    order = sorted(rpms.values(), key=lambda p: -size(os.path.join(stage_root, p.name)))
    built = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        futs = [ex.submit(build_pkg, p, os.path.join(stage_root, p.name), meta, fs_dirs, work,
                          macros_file, size(os.path.join(stage_root, p.name)), kver(p))
                for p in order]
        for f in concurrent.futures.as_completed(futs):
            try:
                built += f.result()
            except SystemExit:
                for other in futs:
                    other.cancel()
                raise

    tmp = out + f".tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for f in built:
        dst = os.path.join(tmp, os.path.basename(f))
        shutil.move(f, dst)
        os.utime(dst, (EPOCH, EPOCH))
    run(["createrepo_c", "--quiet", "--revision", str(EPOCH), "--set-timestamp-to-revision",
         "--workers", str(args.jobs), tmp], stdout=subprocess.DEVNULL)
    with open(os.path.join(tmp, "debian-versions.json"), "w") as f:
        json.dump(versions, f, indent=1, sort_keys=True)
    with open(os.path.join(tmp, "unavailable.txt"), "w") as f:
        for name, gone in sorted(skipped.items()):
            f.write(f"{name}: Debian's {', '.join(gone)} cannot be downloaded\n")
    with open(os.path.join(tmp, STAMP), "w") as f:
        f.write(key + "\n")
    store_in_cache(tmp, key)
    publish(tmp, out)
    for sub in ("stage", "rpmbuild"):
        shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
    log(f"{len(built)} RPMs in {out}; {downloaded} downloaded; "
        f"downloads {t_dl - start:.0f} s, total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
