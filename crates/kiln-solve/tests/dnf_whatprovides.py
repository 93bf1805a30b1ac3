#!/usr/bin/python3
"""Answers "what provides" queries with dnf (libsolv), for comparison with kiln.

Usage: dnf_whatprovides.py REPO_DIR CACHE_DIR < queries   — one dependency per line; prints one
line per query: the NEVRAs (epoch only when non-zero) that satisfy it, sorted, space separated.
"""
import sys

import dnf

repo, cache = sys.argv[1], sys.argv[2]
base = dnf.Base()
base.conf.cachedir = cache
base.conf.reposdir = []
base.conf.substitutions["releasever"] = "3.0"
base.repos.add_new_repo("sample", base.conf, baseurl=["file://" + repo])
base.fill_sack(load_system_repo=False)
query = base.sack.query().available()
for line in sys.stdin:
    req = line.rstrip("\n")
    found = {str(p) for p in query.filter(provides=req)}
    if req.startswith("/"):
        found |= {str(p) for p in query.filter(file=req)}
    print(" ".join(sorted(found)))
