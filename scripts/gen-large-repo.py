#!/usr/bin/python3
"""Generates a large rpm-md repository (metadata only, no payloads) from Debian's package index.

Usage: gen-large-repo.py OUT_DIR [DUMPAVAIL_FILE]

Reads `apt-cache dumpavail` (or the given file) and writes OUT_DIR/repodata/{repomd.xml,
primary.xml.gz, filelists.xml.gz}: one RPM package per Debian package of amd64 or all, so the
dependency graph is a real distribution's (~60,000 packages). The mapping:

  Version  [e:]upstream-revision   -> epoch, version (`-` and `:` become `_`), release
  Pre-Depends, Depends             -> Requires (Pre-Depends with pre="1"); `a | b` -> `(a or b)`
  Recommends, Suggests, Enhances   -> the weak dependencies of the same names
  Provides                         -> Provides (plus the package's own `name = evr`, as rpm adds)
  Conflicts, Breaks                -> Conflicts
  Replaces + (Conflicts or Breaks) -> Obsoletes (Debian's way of saying "takes over from")
  versions `<<` `>>`               -> `<` `>`

Debian's index has no file lists, so some are made up, deterministically: every package ships
/usr/share/doc/NAME/copyright; shells ship /bin/NAME, dash also /bin/sh; every package with a
Pre-Depends requires /bin/sh before install (a file in primary's subset); and one package in 97
requires the copyright file of its first dependency (only in filelists, so resolving it needs
filelists). One package in 25 also appears in an older release, so choices between versions
happen.
"""
import gzip
import hashlib
import os
import re
import subprocess
import sys
import time
from xml.sax.saxutils import escape, quoteattr

ARCHES = {"amd64": "x86_64", "all": "noarch"}
OPS = {"<<": "LT", "<=": "LE", "=": "EQ", ">=": "GE", ">>": "GT", "<": "LE", ">": "GE"}
RICH_OPS = {"LT": "<", "LE": "<=", "EQ": "=", "GE": ">=", "GT": ">"}
SHELLS = {"bash", "dash", "zsh", "mksh", "ksh", "busybox", "yash", "posh"}
DEP_RE = re.compile(r"^\s*([^\s(:]+)(?::\S+)?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\))?\s*$")


def stanzas(text):
    fields, key = {}, None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        yield fields


def evr(version, with_release):
    """Debian version -> (epoch or None, version, release or None)."""
    epoch = None
    if ":" in version:
        epoch, version = version.split(":", 1)
    if "-" in version:
        upstream, release = version.rsplit("-", 1)
    else:
        upstream, release = version, ("0" if with_release else None)
    clean = lambda s: s.replace("-", "_").replace(":", "_")
    return epoch, clean(upstream), clean(release) if release is not None else None


def parse_dep(text):
    """One Debian relation -> (name, flags, (epoch, ver, rel)) or None when unusable."""
    m = DEP_RE.match(text)
    if not m:
        return None
    name, op, version = m.groups()
    if op is None:
        return name, None, None
    return name, OPS[op], evr(version, False)


def rich_atom(dep):
    name, flags, v = dep
    if flags is None:
        return name
    e, ver, rel = v
    text = (e + ":" if e else "") + ver + ("-" + rel if rel else "")
    return f"{name} {RICH_OPS[flags]} {text}"


def relations(field):
    """A Debian relation field -> entries (name, flags, evr); alternatives become rich `or`."""
    out = []
    for group in filter(None, (g.strip() for g in field.split(","))):
        alts = [parse_dep(a) for a in group.split("|")]
        if any(a is None for a in alts):
            continue
        if len(alts) == 1:
            out.append(alts[0])
        else:
            out.append(("(" + " or ".join(rich_atom(a) for a in alts) + ")", None, None))
    return out


def stable_hash(text):
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class Pkg:
    def __init__(self, st):
        self.name = st["Package"]
        self.arch = ARCHES[st["Architecture"]]
        self.epoch, self.ver, self.rel = evr(st["Version"], True)
        self.summary = st.get("Description", "").split("\n")[0]
        h = stable_hash(self.name)
        self.requires = [(d, True) for d in relations(st.get("Pre-Depends", ""))]
        self.requires += [(d, False) for d in relations(st.get("Depends", ""))]
        self.requires = [(d, pre) for d, pre in self.requires if d[0] != self.name]
        deps = [d for d, _ in self.requires]
        if st.get("Pre-Depends"):
            self.requires.append((("/bin/sh", None, None), True))
        if h % 97 == 0 and deps and not deps[0][0].startswith("("):
            self.requires.append(((f"/usr/share/doc/{deps[0][0]}/copyright", None, None), False))
        self.recommends = relations(st.get("Recommends", ""))
        self.suggests = relations(st.get("Suggests", ""))
        self.enhances = relations(st.get("Enhances", ""))
        own = (self.name, "EQ", (self.epoch or "0", self.ver, self.rel))
        self.provides = [own] + [p for p in relations(st.get("Provides", "")) if not p[0].startswith("(")]
        conflicts = relations(st.get("Conflicts", "")) + relations(st.get("Breaks", ""))
        self.conflicts = [c for c in conflicts if not c[0].startswith("(")]
        replaced = {r[0] for r in relations(st.get("Replaces", ""))}
        self.obsoletes = [c for c in self.conflicts if c[0] in replaced and c[0] != self.name]
        self.files = [f"/usr/share/doc/{self.name}/copyright"]
        if self.name in SHELLS:
            self.files.append(f"/bin/{self.name}")
        if self.name == "dash":
            self.files.append("/bin/sh")
        self.size = int(st.get("Size", "0") or 0)
        self.installed = int(st.get("Installed-Size", "0") or 0) * 1024

    def older(self):
        """The same package one release earlier (`~` sorts before anything)."""
        old = Pkg.__new__(Pkg)
        old.__dict__.update(self.__dict__)
        old.rel = self.rel + "~prev"
        old.provides = [(self.name, "EQ", (self.epoch or "0", self.ver, old.rel))] + self.provides[1:]
        return old

    def nevra(self):
        return f"{self.name}-{self.epoch or '0'}:{self.ver}-{self.rel}.{self.arch}"

    def pkgid(self):
        return hashlib.sha256(self.nevra().encode()).hexdigest()


def entry(dep, pre=False):
    name, flags, v = dep
    attrs = f"name={quoteattr(name)}"
    if flags:
        e, ver, rel = v
        attrs += f' flags="{flags}"'
        if e:
            attrs += f' epoch="{e}"'
        attrs += f" ver={quoteattr(ver)}"
        if rel:
            attrs += f" rel={quoteattr(rel)}"
    if pre:
        attrs += ' pre="1"'
    return f"<rpm:entry {attrs}/>"


def in_primary(path):
    return path.startswith("/etc/") or "bin/" in path or path == "/usr/lib/sendmail"


def version_element(p):
    return f'<version epoch="{p.epoch or 0}" ver={quoteattr(p.ver)} rel={quoteattr(p.rel)}/>'


def primary_package(p):
    out = [
        '<package type="rpm">',
        f"<name>{escape(p.name)}</name><arch>{p.arch}</arch>{version_element(p)}",
        f'<checksum type="sha256" pkgid="YES">{p.pkgid()}</checksum>',
        f"<summary>{escape(p.summary)}</summary><description/><packager/><url/>",
        '<time file="0" build="0"/>',
        f'<size package="{p.size}" installed="{p.installed}" archive="0"/>',
        f'<location href="Packages/{escape(p.name)}-{escape(p.ver)}-{escape(p.rel)}.{p.arch}.rpm"/>',
        "<format>",
    ]
    for tag, deps in [
        ("provides", [(d, False) for d in p.provides]),
        ("requires", p.requires),
        ("conflicts", [(d, False) for d in p.conflicts]),
        ("obsoletes", [(d, False) for d in p.obsoletes]),
        ("suggests", [(d, False) for d in p.suggests]),
        ("recommends", [(d, False) for d in p.recommends]),
        ("enhances", [(d, False) for d in p.enhances]),
    ]:
        if deps:
            out.append(f"<rpm:{tag}>" + "".join(entry(d, pre) for d, pre in deps) + f"</rpm:{tag}>")
    out += [f"<file>{escape(f)}</file>" for f in p.files if in_primary(f)]
    out.append("</format></package>")
    return "\n".join(out)


def filelists_package(p):
    files = "".join(f"<file>{escape(f)}</file>" for f in p.files)
    return (
        f'<package pkgid="{p.pkgid()}" name={quoteattr(p.name)} arch="{p.arch}">'
        f"{version_element(p)}{files}</package>"
    )


def write_gz(path, header, items, footer):
    raw = hashlib.sha256()
    size = 0
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as f:
        for chunk in [header, *items, footer]:
            data = (chunk + "\n").encode()
            raw.update(data)
            size += len(data)
            f.write(data)
    return raw.hexdigest(), size


def record(kind, path, open_sum, open_size, stamp):
    with open(path, "rb") as f:
        data = f.read()
    return (
        f'<data type="{kind}"><checksum type="sha256">{hashlib.sha256(data).hexdigest()}</checksum>'
        f'<open-checksum type="sha256">{open_sum}</open-checksum>'
        f'<location href="repodata/{os.path.basename(path)}"/><timestamp>{stamp}</timestamp>'
        f"<size>{len(data)}</size><open-size>{open_size}</open-size></data>"
    )


def main():
    out = sys.argv[1]
    if len(sys.argv) > 2:
        with open(sys.argv[2], encoding="utf-8", errors="replace") as f:
            text = f.read()
    else:
        text = subprocess.run(
            ["apt-cache", "dumpavail"], check=True, capture_output=True
        ).stdout.decode("utf-8", "replace")
    packages, seen = [], set()
    for st in stanzas(text):
        if st.get("Architecture") not in ARCHES or "Package" not in st or "Version" not in st:
            continue
        p = Pkg(st)
        if p.nevra() in seen:
            continue
        seen.add(p.nevra())
        packages.append(p)
        if stable_hash(p.name) % 25 == 1:
            packages.append(p.older())
    packages.sort(key=lambda p: (p.name, p.nevra()))
    repodata = os.path.join(out, "repodata")
    os.makedirs(repodata, exist_ok=True)
    for name in os.listdir(repodata):
        os.remove(os.path.join(repodata, name))
    stamp = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    n = len(packages)
    primary = os.path.join(repodata, "primary.xml.gz")
    p_sum, p_size = write_gz(
        primary,
        '<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common"'
        f' xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="{n}">',
        (primary_package(p) for p in packages),
        "</metadata>",
    )
    filelists = os.path.join(repodata, "filelists.xml.gz")
    f_sum, f_size = write_gz(
        filelists,
        '<?xml version="1.0" encoding="UTF-8"?>\n<filelists xmlns="http://linux.duke.edu/metadata/filelists"'
        f' packages="{n}">',
        (filelists_package(p) for p in packages),
        "</filelists>",
    )
    repomd = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo"'
        ' xmlns:rpm="http://linux.duke.edu/metadata/rpm">'
        f"<revision>{stamp}</revision>"
        + record("primary", primary, p_sum, p_size, stamp)
        + record("filelists", filelists, f_sum, f_size, stamp)
        + "</repomd>\n"
    )
    with open(os.path.join(repodata, "repomd.xml.tmp"), "w") as f:
        f.write(repomd)
    os.rename(os.path.join(repodata, "repomd.xml.tmp"), os.path.join(repodata, "repomd.xml"))
    print(f"{out}: {n} packages")


if __name__ == "__main__":
    main()
