//! kiln's resolution against dnf's on a large repository with a real distribution's dependency
//! graph (Debian's package index as rpm-md metadata, `scripts/gen-large-repo.py`): 50 random
//! package sets, each with weak dependencies on (tdnf's default) and off. Both must choose the
//! same NEVRAs, or both must fail.

mod common;

#[test]
fn random_sets_on_a_large_repository_match_dnf() {
    let root = common::large_repo();
    let (pool, names) = common::pool_of(&root);
    assert!(pool.len() >= 20_000, "the large repository is too small");

    let mut rng = common::Lcg(20_000);
    let mut lines = Vec::new();
    let mut kiln = Vec::new();
    for _ in 0..50 {
        let n = 1 + rng.next() % 8;
        let mut set: Vec<String> = (0..n)
            .map(|_| names[rng.next() % names.len()].clone())
            .collect();
        set.sort();
        set.dedup();
        for weak in [true, false] {
            lines.push(format!("{}\t{}", u8::from(weak), set.join("\t")));
            kiln.push(common::kiln_answer(&pool, &set, weak));
        }
    }
    let dnf = common::ask_dnf("dnf_resolve.py", &root, &lines);
    common::assert_agree("large repository", &lines, &kiln, &dnf);
}
