#!/usr/bin/python3
"""Resolves package sets with dnf (libsolv) on an empty install root, for comparison with kiln.

Usage: dnf_resolve.py REPO_DIR CACHE_DIR < cases   — one case per line: "0" or "1" (weak
dependencies off/on), a tab, then the package strings separated by tabs. Prints one line per
case: the NEVRAs to install (epoch only when non-zero), sorted, space separated; or "ERROR".
"""
import sys
import tempfile

import dnf
import dnf.exceptions

repo, cache = sys.argv[1], sys.argv[2]
root = tempfile.mkdtemp(prefix="kiln-dnf-root-")


def base_for(weak):
    base = dnf.Base()
    base.conf.cachedir = cache
    base.conf.reposdir = []
    base.conf.installroot = root
    base.conf.install_weak_deps = weak
    base.conf.substitutions["releasever"] = "3.0"
    base.conf.substitutions["basearch"] = "x86_64"
    base.repos.add_new_repo("sample", base.conf, baseurl=["file://" + repo])
    base.fill_sack(load_system_repo=False)
    return base


bases = {}
for line in sys.stdin:
    weak, *specs = line.rstrip("\n").split("\t")
    weak = weak == "1"
    if weak not in bases:
        bases[weak] = base_for(weak)
    base = bases[weak]
    base.reset(goal=True)
    try:
        for spec in specs:
            base.install(spec)
        base.resolve()
        print(" ".join(sorted(str(p) for p in base.transaction.install_set)))
    except dnf.exceptions.Error:
        print("ERROR")
    sys.stdout.flush()
