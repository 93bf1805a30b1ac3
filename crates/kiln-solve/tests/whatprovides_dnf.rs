//! "What satisfies this dependency?" answered by kiln's pool and by dnf (libsolv) on the sample
//! repository: every simple dependency any package declares, plus versioned ranges and paths
//! chosen to probe the edges, must get the same providers.

mod common;

use kiln_repo::load_dir;
use kiln_rpm::Dep;
use kiln_solve::pool::{Pool, Source};
use std::collections::BTreeSet;

#[test]
fn providers_match_dnf() {
    let root = common::sample_repo();
    let repo = load_dir(&root, true).unwrap();
    let mut queries: BTreeSet<String> = BTreeSet::new();
    for p in &repo.packages {
        for r in p
            .provides
            .iter()
            .chain(&p.requires)
            .chain(&p.conflicts)
            .chain(&p.obsoletes)
            .chain(&p.recommends)
            .chain(&p.supplements)
        {
            if !r.dep.is_rich() {
                queries.insert(r.dep.to_string());
            }
        }
    }
    for extra in [
        "sample-libfoo",
        "sample-libfoo = 1.1",
        "sample-libfoo < 1.1",
        "sample-libfoo <= 1.1",
        "sample-libfoo > 1.1",
        "sample-libfoo >= 2",
        "sample-libfoo = 1.1-1.azl3",
        "sample-libfoo = 1.1-2",
        "sample-epoch > 1.5",
        "sample-epoch >= 1:0.1",
        "sample-epoch = 2.0",
        "sample-old",
        "sample-old < 2.0",
        "sample-mta",
        "sample-mta >= 2",
        "/bin/sh",
        "/usr/bin/sample-app",
        "/etc/hosts",
        "/boot",
        "/nonexistent",
        "nothing-provides-this",
        "busybox(x86-64)",
        "kernel >= 6",
        "kernel < 6",
    ] {
        queries.insert(extra.to_string());
    }
    let queries: Vec<String> = queries.into_iter().collect();

    let mut pool = Pool::new();
    pool.add_source(
        Source {
            name: "sample".into(),
            priority: 99,
        },
        repo.packages,
    );
    let kiln: Vec<String> = queries
        .iter()
        .map(|q| {
            let ids = pool.what_provides(&Dep::parse(q).unwrap()).unwrap();
            let mut v: Vec<String> = ids.iter().map(|id| pool.package(*id).nevra()).collect();
            v.sort();
            v.join(" ")
        })
        .collect();

    let dnf = common::ask_dnf("dnf_whatprovides.py", &common::sample_repo(), &queries);
    common::assert_agree("what provides queries", &queries, &kiln, &dnf);
}
