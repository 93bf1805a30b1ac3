//! A config's Groups and Users, from JSON to the image's files: the sample repository's account
//! files as the starting point, then passwd, group, shadow, gshadow, the SSH files and the
//! password hash (verified with libxcrypt) checked.

use kiln_compose::users::apply;
use kiln_config::{validate_bytes, Options};
use kiln_formats::ident::Identity;
use kiln_sandbox::ImageRoot;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const EPOCH: u64 = 1_700_000_000; // day 19675

fn sample_root(root: &Path) {
    let etc = root.join("etc");
    std::fs::create_dir_all(etc.join("default")).unwrap();
    let w = |p: &str, s: &str| std::fs::write(etc.join(p), s).unwrap();
    w("passwd", "root:x:0:0:root:/root:/bin/sh\n");
    w("group", "root:x:0:\nwheel:x:10:\nusers:x:100:\n");
    w("shadow", "root:*:19000:0:99999:7:::\n");
    w("gshadow", "root:::\nwheel:::\nusers:::\n");
    w(
        "login.defs",
        "ENCRYPT_METHOD SHA512\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n",
    );
    w("default/useradd", "GROUP=100\nHOME=/home\nSHELL=/bin/sh\n");
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap()
}

fn config(dir: &Path, json: &str) -> kiln_config::model::SystemConfig {
    let opts = Options {
        base_dir: Some(dir.to_path_buf()),
        package_checks: false,
        file_checks: false,
    };
    let v = validate_bytes(json.as_bytes(), &dir.join("c.json"), &opts);
    v.config.expect("config parses").config.system_configs[0].clone()
}

#[test]
fn users_and_groups_land_as_configured() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    sample_root(&root);
    std::fs::write(
        d.path().join("id_test.pub"),
        "ssh-ed25519 AAAAfile1 a@b\r\nssh-rsa AAAAfile2 c@d\n",
    )
    .unwrap();
    let sc = config(
        d.path(),
        r#"{"SystemConfigs": [{"Name": "x", "Packages": ["shadow-utils"],
            "Groups": [{"Name": "ops", "GID": "2000"}, {"Name": "devs"}],
            "Users": [
              {"Name": "kiln", "Password": "kiln", "SecondaryGroups": ["wheel", "devs"],
               "SSHPubKeyPaths": ["id_test.pub"], "SSHPubKeys": ["ssh-ed25519 AAAAlit e@f"],
               "PasswordExpiresDays": 30},
              {"Name": "svc", "UID": "1500", "PrimaryGroup": "ops", "HomeDirectory": "/srv/svc",
               "StartupCommand": "/usr/bin/app", "PasswordHashed": true, "Password": "$6$a$b"},
              {"Name": "root", "Password": ""}]}]}"#,
    );
    apply(
        &ImageRoot::open(&root).unwrap(),
        &sc.groups,
        &sc.users,
        d.path(),
        &Identity::seeded(b"users", EPOCH),
    )
    .unwrap();

    assert_eq!(
        read(&root, "etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         kiln:x:1000:100::/home/kiln:/bin/sh\n\
         svc:x:1500:2000::/srv/svc:/usr/bin/app\n"
    );
    assert_eq!(
        read(&root, "etc/group"),
        "root:x:0:\nwheel:x:10:kiln\nusers:x:100:\nops:x:2000:\ndevs:x:2001:kiln\n"
    );
    assert_eq!(
        read(&root, "etc/gshadow"),
        "root:::\nwheel:::kiln\nusers:::\nops:!::\ndevs:!::kiln\n"
    );
    let shadow = read(&root, "etc/shadow");
    let lines: Vec<&str> = shadow.lines().collect();
    // Root: empty password → "*"; kept its aging since root is in Users.
    assert_eq!(lines[0], "root:*:19000:0:99999:7:::");
    // PasswordExpiresDays 30: account expiry = last change + 30.
    let kiln: Vec<&str> = lines[1].split(':').collect();
    assert_eq!(kiln[2..], ["19675", "", "", "", "", "19705", ""]);
    assert_eq!(lines[2], "svc:$6$a$b:19675::::::");
    // The hash verifies with libxcrypt, and is reproducible.
    let check = Command::new("/usr/bin/python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; h=sys.argv[1]; sys.exit(crypt.crypt('kiln', h) != h)",
            kiln[1],
        ])
        .status()
        .unwrap();
    assert!(check.success(), "{}", kiln[1]);
    assert!(kiln[1].starts_with("$6$") && kiln[1].split('$').nth(2).unwrap().len() == 16);

    let ssh = root.join("home/kiln/.ssh");
    assert_eq!(
        read(&ssh, "authorized_keys"),
        "ssh-ed25519 AAAAfile1 a@b\nssh-rsa AAAAfile2 c@d\nssh-ed25519 AAAAlit e@f\n"
    );
    for p in ["", "authorized_keys", "id_test.pub"] {
        let m = std::fs::metadata(ssh.join(p)).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o700, 1000, 100),
            "{p}"
        );
    }
}

#[test]
fn without_a_root_user_root_never_expires_and_mistakes_are_named() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    sample_root(&root);
    let id = Identity::seeded(b"users", EPOCH);
    let sc = config(
        d.path(),
        r#"{"SystemConfigs": [{"Name": "x", "Packages": ["shadow-utils"],
            "Users": [{"Name": "a", "Password": "p"}]}]}"#,
    );
    apply(
        &ImageRoot::open(&root).unwrap(),
        &sc.groups,
        &sc.users,
        d.path(),
        &id,
    )
    .unwrap();
    assert!(read(&root, "etc/shadow").starts_with("root:*:19000:0:::::\n"));

    let sc = config(
        d.path(),
        r#"{"SystemConfigs": [{"Name": "x", "Packages": ["shadow-utils"],
            "Users": [{"Name": "b", "SSHPubKeyPaths": ["missing.pub"]}]}]}"#,
    );
    let e = apply(
        &ImageRoot::open(&root).unwrap(),
        &sc.groups,
        &sc.users,
        d.path(),
        &id,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("user 'b': ") && e.to_string().contains("missing.pub"),
        "{e}"
    );
    let sc = config(
        d.path(),
        r#"{"SystemConfigs": [{"Name": "x", "Packages": ["shadow-utils"],
            "Users": [{"Name": "c", "HomeDirectory": "/../../outside"}]}]}"#,
    );
    let e = apply(
        &ImageRoot::open(&root).unwrap(),
        &sc.groups,
        &sc.users,
        d.path(),
        &id,
    )
    .unwrap_err();
    assert!(e.to_string().contains("outside the image root"), "{e}");
    assert!(!d.path().join("outside").exists());
}
