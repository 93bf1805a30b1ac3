//! kiln's account files against shadow-utils' own: the same groups and users added to two
//! copies of a root, one by kiln, one by the build host's `groupadd`/`useradd -m`/`usermod -a -G`
//! run with `--root` (the tools upstream runs in the image chroot). passwd, group, shadow,
//! gshadow and the home directories (modes, owners, skeleton) must come out the same.

use kiln_compose::accounts::{Accounts, NewUser};
use kiln_sandbox::ImageRoot;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const EPOCH: u64 = 1_700_000_000;

fn make_root(root: &Path, login_defs: &str) {
    let etc = root.join("etc");
    std::fs::create_dir_all(etc.join("default")).unwrap();
    std::fs::create_dir_all(etc.join("skel")).unwrap();
    let w = |p: &str, s: &str| std::fs::write(etc.join(p), s).unwrap();
    w("passwd", "root:x:0:0:root:/root:/bin/sh\n");
    w("group", "root:x:0:\nwheel:x:10:\nusers:x:100:\n");
    w("shadow", "root:*:19000:0:99999:7:::\n");
    w("gshadow", "root:::\nwheel:::\nusers:::\n");
    w("login.defs", login_defs);
    w(
        "default/useradd",
        "GROUP=100\nHOME=/home\nSHELL=/bin/sh\nSKEL=/etc/skel\n",
    );
    w("skel/.profile", "# profile\n");
    // Only a flat skeleton: Debian 12's `useradd --root` (shadow 4.13) creates nested skeleton
    // directories empty and drops symlinks, which useradd run inside the image does not; the
    // unit test below covers those.
}

fn run(tool: &str, root: &Path, args: &[&str]) {
    let o = Command::new(tool)
        .arg("--root")
        .arg(root)
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file under the root except the tools' backups and lock, with mode, owner and content.
fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel.ends_with('-') || rel.ends_with(".pwd.lock") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                std::fs::read_to_string(&p).unwrap()
            } else {
                String::new()
            };
            out.push(format!(
                "{rel} {:o} {}:{}\n{content}",
                m.mode(),
                m.uid(),
                m.gid()
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn compare(login_defs: &str) {
    let d = tempfile::tempdir().unwrap();
    let (theirs, ours) = (d.path().join("theirs"), d.path().join("ours"));
    make_root(&theirs, login_defs);
    make_root(&ours, login_defs);

    run("groupadd", &theirs, &["devs"]);
    run("groupadd", &theirs, &["-g", "2000", "ops"]);
    run("useradd", &theirs, &["alice", "-m", "-p", "$6$salt$hash"]);
    run(
        "useradd",
        &theirs,
        &["bob", "-m", "-u", "1500", "-d", "/srv/bob", "-g", "ops"],
    );
    run("useradd", &theirs, &["carol", "-m"]);
    run("useradd", &theirs, &["dave", "-m", "-g", "2000"]);
    run("usermod", &theirs, &["-a", "-G", "wheel,devs", "carol"]);
    run("usermod", &theirs, &["-a", "-G", "devs", "alice"]);

    let days = EPOCH / 86400;
    let image = ImageRoot::open(&ours).unwrap();
    let mut a = Accounts::open(&image).unwrap();
    a.add_group("devs", None).unwrap();
    a.add_group("ops", Some(2000)).unwrap();
    let user = |name| NewUser {
        name,
        ..NewUser::default()
    };
    a.add_user(
        &NewUser {
            hash: Some("$6$salt$hash"),
            ..user("alice")
        },
        days,
    )
    .unwrap();
    a.add_user(
        &NewUser {
            uid: Some(1500),
            home: Some("/srv/bob"),
            primary_group: Some("ops"),
            ..user("bob")
        },
        days,
    )
    .unwrap();
    a.add_user(&user("carol"), days).unwrap();
    a.add_user(
        &NewUser {
            primary_group: Some("2000"),
            ..user("dave")
        },
        days,
    )
    .unwrap();
    a.join_groups("carol", &["wheel", "devs"]).unwrap();
    a.join_groups("alice", &["devs"]).unwrap();
    a.save().unwrap();

    assert_eq!(snapshot(&ours), snapshot(&theirs));
}

#[test]
fn same_as_useradd_with_the_sample_login_defs() {
    compare("ENCRYPT_METHOD SHA512\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\nCREATE_HOME yes\n");
}

#[test]
fn same_as_useradd_with_user_groups_and_private_homes() {
    compare("UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\nUSERGROUPS_ENAB yes\nUMASK 077\nHOME_MODE 0700\n");
}

#[test]
fn nested_skeletons_are_copied_whole_and_owned_by_the_user() {
    let d = tempfile::tempdir().unwrap();
    make_root(d.path(), "USERGROUPS_ENAB yes\n");
    let skel = d.path().join("etc/skel");
    std::fs::create_dir_all(skel.join(".config/app")).unwrap();
    std::fs::write(skel.join(".config/app/rc"), "x\n").unwrap();
    std::os::unix::fs::symlink(".profile", skel.join(".bash_profile")).unwrap();
    let image = ImageRoot::open(d.path()).unwrap();
    let mut a = Accounts::open(&image).unwrap();
    let added = a
        .add_user(
            &NewUser {
                name: "erin",
                ..NewUser::default()
            },
            1,
        )
        .unwrap();
    assert_eq!((added.uid, added.gid), (1000, 1000));
    let home = d.path().join("home/erin");
    for (p, mode) in [
        (".config", 0o40755),
        (".config/app", 0o40755),
        (".config/app/rc", 0o100644),
        (".bash_profile", 0o120777),
    ] {
        let m = std::fs::symlink_metadata(home.join(p)).unwrap();
        assert_eq!((m.mode(), m.uid(), m.gid()), (mode, 1000, 1000), "{p}");
    }
    assert_eq!(
        std::fs::read_link(home.join(".bash_profile")).unwrap(),
        Path::new(".profile")
    );
}

#[test]
fn mistakes_are_named() {
    let d = tempfile::tempdir().unwrap();
    make_root(d.path(), "");
    let image = ImageRoot::open(d.path()).unwrap();
    let mut a = Accounts::open(&image).unwrap();
    let e = a
        .add_user(
            &NewUser {
                name: "eve",
                primary_group: Some("nosuch"),
                ..NewUser::default()
            },
            1,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "user 'eve': group 'nosuch' does not exist (add it to the config's Groups)"
    );
    let e = a
        .add_user(
            &NewUser {
                name: "eve",
                home: Some("/../../tmp/eve"),
                ..NewUser::default()
            },
            1,
        )
        .unwrap_err();
    assert!(e.to_string().contains("outside the image root"), "{e}");
    assert_eq!(
        a.add_user(
            &NewUser {
                name: "root",
                ..NewUser::default()
            },
            1
        )
        .unwrap_err()
        .to_string(),
        "user 'root' already exists"
    );
    assert!(a
        .add_group("ops", Some(0))
        .unwrap_err()
        .to_string()
        .contains("already used by group 'root'"));
    a.set_password("root", "").unwrap();
    a.set_password_expiry("root", -1, 5).unwrap();
    a.save().unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path().join("etc/shadow")).unwrap(),
        "root:*:19000:0:::::\n"
    );
}
