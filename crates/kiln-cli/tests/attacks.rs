//! The attack suite: a hostile user against `kiln compose` and `kiln build`, run as root (as CI
//! runs them). Every hostile input — configs, scripts, RPMs built with `rpmbuild` — is made
//! here at test time. Every case checks that the build host is untouched (sentinel files,
//! `/etc/passwd`, `/etc/shadow` and the host paths the attack aims at), that no process of the
//! build outlives it, that no mount is left behind, and that the build either fails naming the
//! culprit or succeeds with the effect confined to the image.

mod common;

use common::{demo_config, kiln, sample_repo};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The longest a kiln run may take here: a hang fails the test instead of stalling the run.
const DEADLINE: Duration = Duration::from_secs(300);

/// A host path as it was: mode, owner, size, modification time and a small file's bytes;
/// `None` when it did not exist.
type State = BTreeMap<PathBuf, Option<(u32, u32, u64, i64, i64, Option<Vec<u8>>)>>;

/// The state of `paths` and of everything under them (symlinks not followed).
fn snapshot(paths: &[PathBuf]) -> State {
    let mut state = State::new();
    let mut stack = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            state.insert(p, None);
            continue;
        };
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        let bytes = (m.is_file() && m.len() <= 1 << 20).then(|| std::fs::read(&p).unwrap());
        let entry = (m.mode(), m.uid(), m.len(), m.mtime(), m.mtime_nsec(), bytes);
        state.insert(p, Some(entry));
    }
    state
}

fn mounts() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The processes whose command line contains `marker` (other than this one).
fn processes_with(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                return None;
            }
            let cmdline = std::fs::read(format!("/proc/{name}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(marker)
                .then(|| format!("{name}: {cmdline}"))
        })
        .collect()
}

/// The build host as an attack finds it: sentinels the attack aims at, and what must stay as
/// it is. Dropping it removes the sentinels.
struct Host {
    /// `/tmp/kiln-attack-sentinel-<pid>-<tag>`: `secret`, `dir/` and `skel/secret`.
    dir: PathBuf,
    /// `/etc/kiln-attack-sentinel-<pid>-<tag>`.
    etc: PathBuf,
    /// What the hostile scripts run (`sleep <marker>`), to find their processes by.
    marker: String,
    watched: Vec<PathBuf>,
    before: State,
    mounts: BTreeSet<String>,
}

impl Host {
    /// Sentinels for the test `tag`; `marker` is the number the test's hostile processes
    /// sleep; `also` are further host paths the attack aims at.
    fn new(tag: &str, marker: u32, also: &[&str]) -> Host {
        let id = format!("kiln-attack-sentinel-{}-{tag}", std::process::id());
        let dir = Path::new("/tmp").join(&id);
        let etc = Path::new("/etc").join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dir")).unwrap();
        std::fs::create_dir_all(dir.join("skel")).unwrap();
        let secret = format!("host secret of {id}\n");
        std::fs::write(dir.join("secret"), &secret).unwrap();
        std::fs::write(dir.join("dir/keep"), &secret).unwrap();
        std::fs::write(dir.join("skel/.secret"), &secret).unwrap();
        std::fs::write(&etc, &secret).unwrap();
        let mut watched = vec![
            dir.clone(),
            etc.clone(),
            "/etc/passwd".into(),
            "/etc/shadow".into(),
            "/etc/group".into(),
        ];
        watched.extend(also.iter().map(PathBuf::from));
        Host {
            before: snapshot(&watched),
            mounts: mounts(),
            marker: format!("sleep {marker}"),
            dir,
            etc,
            watched,
        }
    }

    /// The secret every sentinel holds.
    fn secret(&self) -> String {
        std::fs::read_to_string(&self.etc).unwrap()
    }

    /// The host is as it was: the watched paths byte for byte, no process of the build, no
    /// new mount.
    fn check(&self) {
        let after = snapshot(&self.watched);
        let changed: Vec<String> = self
            .before
            .keys()
            .chain(after.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|p| self.before.get(*p) != after.get(*p))
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            changed.is_empty(),
            "the build touched the host: {changed:?}"
        );
        let started = Instant::now();
        let mut left = processes_with(&self.marker);
        while !left.is_empty() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
            left = processes_with(&self.marker);
        }
        assert!(left.is_empty(), "processes outlived the build: {left:?}");
        let new: Vec<String> = mounts().difference(&self.mounts).cloned().collect();
        assert!(new.is_empty(), "mounts left on the host: {new:?}");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.etc);
    }
}

/// A finished kiln run.
struct Ran {
    status: ExitStatus,
    /// The end (64 KiB at most) of its output (standard output and error).
    stderr: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.status.success()
    }

    /// Asserts that the run failed with a message containing each of `words`.
    fn fails_naming(&self, words: &[&str]) {
        assert!(!self.ok(), "the build succeeded: {}", self.stderr);
        for w in words {
            assert!(
                self.stderr.contains(w),
                "{w:?} is not named in: {}",
                self.stderr
            );
        }
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }

    /// Asserts that the run succeeded.
    fn succeeds(&self) {
        assert!(self.ok(), "{}", self.stderr);
    }
}

/// The last 64 KiB of a file.
fn tail(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)))
        .unwrap();
    let mut b = Vec::new();
    f.read_to_end(&mut b).unwrap();
    String::from_utf8_lossy(&b).into_owned()
}

/// Runs `cmd` (standard output and error into `log`), calling `tick` with its process id every 50 ms while it
/// runs; kills it and fails after [`DEADLINE`].
fn run(cmd: &mut Command, log: &Path, mut tick: impl FnMut(u32)) -> Ran {
    let file = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {DEADLINE:?}: {}", tail(log));
        }
        tick(child.id());
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = tail(log);
    // Shown with the failure of the test (or with --nocapture).
    println!(
        "{cmd:?}: {status}\n{}",
        stderr
            .get(stderr.len().saturating_sub(4096)..)
            .unwrap_or("")
    );
    Ran { status, stderr }
}

/// `kiln compose` of `config` from `repos` (then the sample repository) into `out`.
fn compose(config: &Path, out: &Path, repos: &[&Path], extra: &[&str]) -> Command {
    let mut c = kiln();
    c.arg("compose").arg("--config").arg(config);
    for r in repos {
        c.arg("--repo").arg(r);
    }
    c.arg("--repo")
        .arg(sample_repo())
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

/// Composes and waits: the run and the composed root (`out/rootfs`).
fn compose_run(config: &Path, out: &Path, repos: &[&Path], extra: &[&str]) -> (Ran, PathBuf) {
    let log = out.with_extension("log");
    let ran = run(&mut compose(config, out, repos, extra), &log, |_| {});
    (ran, out.join("rootfs"))
}

/// A copy of demo-container (its AdditionalFiles by absolute path, no PostInstallScripts),
/// changed by `edit` (given the SystemConfig), written to `work/<name>.json`.
fn container_config(work: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let demo = std::fs::read_to_string(demo_config("demo-container.json")).unwrap();
    let mut config: Value = serde_json::from_str(&demo).unwrap();
    let sc = &mut config["SystemConfigs"][0];
    let motd = demo_config("files/motd").display().to_string();
    sc["AdditionalFiles"] = json!({ motd: {"Path": "/etc/motd", "Permissions": "644"} });
    sc["PostInstallScripts"] = json!([]);
    edit(sc);
    let path = work.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// A shell script `work/<name>` running `body`; returns its config entry (`{"Path": …}`).
fn script(work: &Path, name: &str, body: &str) -> Value {
    let path = work.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    json!({"Path": path.display().to_string()})
}

/// Adds package names to a SystemConfig's Packages.
fn add_packages(sc: &mut Value, names: &[&str]) {
    let list = sc["Packages"].as_array_mut().unwrap();
    list.extend(names.iter().map(|n| json!(n)));
}

/// A hostile package: its name and version, the shell lines of `%install` (in
/// `%{buildroot}`), its `%files` lines, and scriptlet sections (`%post` …) as written in a spec.
struct Package<'a> {
    name: &'a str,
    version: &'a str,
    install: &'a str,
    files: &'a str,
    scriptlets: &'a str,
}

/// Builds `package` (noarch) with rpmbuild into the directory of RPM files `repo`.
fn rpmbuild(repo: &Path, package: &Package) {
    let top = repo.with_file_name(format!("rpmbuild-{}", package.name));
    std::fs::create_dir_all(&top).unwrap();
    std::fs::create_dir_all(repo).unwrap();
    let spec = top.join(format!("{}.spec", package.name));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\n\
             Summary: A hostile package of kiln's attack suite\nLicense: MIT\n\
             BuildArch: noarch\nAutoReqProv: no\n\
             Requires(pre): busybox\nRequires(post): busybox\nRequires(posttrans): busybox\n\
             %description\nHostile.\n\
             %install\nmkdir -p %{{buildroot}}\n{install}\n\
             %files\n{files}\n{scriptlets}\n",
            name = package.name,
            version = package.version,
            install = package.install,
            files = package.files,
            scriptlets = package.scriptlets,
        ),
    )
    .unwrap();
    let o = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "__os_install_post %{nil}"])
        .args(["--define", "_build_id_links none"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(o.status.success(), "rpmbuild: {}", common::stderr(&o));
    for e in std::fs::read_dir(top.join("RPMS/noarch")).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), repo.join(e.file_name())).unwrap();
    }
}

/// The regular files under `dir` (symlinks not followed) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if m.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(p);
            }
        }
    }
    found
}

/// What `path` in the composed root is: a symlink's target, or `file`/`dir`/`absent`.
fn kind(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Err(_) => "absent".into(),
        Ok(m) if m.file_type().is_symlink() => {
            format!("-> {}", std::fs::read_link(path).unwrap().display())
        }
        Ok(m) if m.is_dir() => "dir".into(),
        Ok(m) if m.is_file() => "file".into(),
        Ok(_) => "special".into(),
    }
}

// --- 1. Symlinks planted in the image ---------------------------------------------------------

#[test]
fn symlinks_planted_in_the_image_never_lead_kiln_to_the_host() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new(
        "links",
        31401,
        &[
            "/usr/lib/rpm/macros.d",
            "/var/lib/rpm",
            "/var/lib/rpmmanifest",
            "/var/cache/tdnf",
            "/etc/hostname",
            "/etc/machine-id",
            "/etc/image-id",
        ],
    );
    let (dir, etc) = (host.dir.display(), host.etc.display());
    // A package plants what kiln writes before the scripts run (machine-id, hostname, the
    // manifests, the tdnf cache); the script plants what it writes after them.
    let repo = work.path().join("repo");
    // The links' targets exist in the image too, so kiln's writes have somewhere to go.
    let post = format!(
        "%post\n\
         mkdir -p {dir}/dir\n\
         rm -f /etc/machine-id /etc/hostname\n\
         ln -s {etc} /etc/machine-id\n\
         ln -s {etc} /etc/hostname\n\
         mkdir -p /var/lib /var/cache\n\
         rm -rf /var/lib/rpmmanifest /var/cache/tdnf\n\
         ln -s {dir}/dir /var/lib/rpmmanifest\n\
         ln -s {dir}/dir /var/cache/tdnf\n"
    );
    rpmbuild(
        &repo,
        &Package {
            name: "kiln-attack-links",
            version: "1",
            install: "",
            files: "",
            scriptlets: &post,
        },
    );
    let plant = format!(
        "set -e\n\
         mkdir -p /usr/lib/rpm\n\
         rm -rf /usr/lib/rpm/macros.d /var/lib/rpm /etc/image-id\n\
         ln -s {dir}/dir /usr/lib/rpm/macros.d\n\
         ln -s {dir}/dir /var/lib/rpm\n\
         ln -s {etc} /etc/image-id\n"
    );
    for remove_rpm_db in [true, false] {
        let name = format!("links-{remove_rpm_db}");
        let config = container_config(work.path(), &name, |sc| {
            add_packages(sc, &["kiln-attack-links"]);
            sc["PostInstallScripts"] = json!([script(work.path(), "plant.sh", &plant)]);
            sc["RemoveRpmDb"] = json!(remove_rpm_db);
            sc["DisableRpmDocs"] = json!(true);
            sc["OverrideRpmLocales"] = json!("en");
        });
        let (ran, root) = compose_run(&config, &work.path().join(&name), &[&repo], &[]);
        host.check();
        ran.succeeds();
        // kiln replaced the planted links with its own files, inside the image.
        for (path, want) in [
            ("etc/machine-id", "file"),
            ("etc/image-id", "file"),
            ("var/cache/tdnf", &format!("-> {dir}/dir") as &str),
        ] {
            assert_eq!(kind(&root.join(path)), want, "{path}");
        }
        assert!(std::fs::read_to_string(root.join("etc/image-id"))
            .unwrap()
            .starts_with("BUILD_NUMBER="));
        let macros = root.join(host.dir.strip_prefix("/").unwrap()).join("dir");
        assert!(
            macros
                .join("macros.installercustomizations_disable_docs")
                .is_file()
                || root
                    .join("usr/lib/rpm/macros.d/macros.installercustomizations_disable_docs")
                    .is_file(),
            "the macros are in the image: {}",
            kind(&root.join("usr/lib/rpm/macros.d"))
        );
        assert!(files_containing(&root, &host.secret()).is_empty());
    }
}

// --- 2. /etc entries of a package pointing at the host ----------------------------------------

#[test]
fn etc_symlinks_of_a_package_do_not_reach_the_host_when_users_are_added() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("etc", 31402, &[]);
    let (dir, etc) = (host.dir.display(), host.etc.display());
    // shadow-utils goes in before the users are added: a hostile one replaces the image's
    // shadow and skel (then passwd) with links to the host's files.
    let variants = [
        format!(
            "rm -rf /etc/shadow /etc/skel\nln -s {etc} /etc/shadow\nln -s {dir}/skel /etc/skel"
        ),
        format!("rm -f /etc/passwd\nln -s {dir}/secret /etc/passwd"),
    ];
    for (i, links) in variants.iter().enumerate() {
        let repo = work.path().join(format!("repo{i}"));
        rpmbuild(
            &repo,
            &Package {
                name: "shadow-utils",
                version: "99",
                install: "mkdir -p %{buildroot}/etc/default\n\
                          printf 'GROUP=100\\nHOME=/home\\nSHELL=/bin/sh\\nSKEL=/etc/skel\\n' \
                          > %{buildroot}/etc/default/useradd",
                files: "/etc/default/useradd",
                scriptlets: &format!("%post\n{links}\n"),
            },
        );
        let config = container_config(work.path(), &format!("etc{i}"), |sc| {
            sc["Users"][0]["SSHPubKeyPaths"] = json!([demo_config("files/motd")]);
        });
        let out = work.path().join(format!("etc{i}"));
        let (ran, root) = compose_run(&config, &out, &[&repo], &[]);
        host.check();
        if i == 0 {
            // The links dangle inside the image: kiln neither wrote nor copied through them.
            ran.succeeds();
            assert_eq!(kind(&root.join("etc/shadow")), format!("-> {etc}"));
            assert!(root.join("home/app").is_dir());
            assert!(!root.join("home/app/.secret").exists());
            assert!(files_containing(&root, &host.secret()).is_empty());
        } else {
            // Without a passwd file there is no account to give the keys to.
            ran.fails_naming(&["Users", "no /etc/passwd"]);
        }
    }
}

// --- 3. The scripts' directory as a link to the host ------------------------------------------

#[test]
fn a_linked_script_directory_never_puts_scripts_on_the_host() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("scripts", 31403, &["/tmp/kiln-scripts"]);
    let install = format!(
        "mkdir -p %{{buildroot}}/tmp\nln -s {}/dir %{{buildroot}}/tmp/kiln-scripts",
        host.dir.display()
    );
    // The link dangles in the image, then its target exists in the image too.
    for (i, post) in ["", &format!("%post\nmkdir -p {}/dir\n", host.dir.display())]
        .iter()
        .enumerate()
    {
        let repo = work.path().join(format!("repo{i}"));
        rpmbuild(
            &repo,
            &Package {
                name: "kiln-attack-scripts",
                version: "1",
                install: &install,
                files: "/tmp/kiln-scripts",
                scriptlets: post,
            },
        );
        let config = container_config(work.path(), &format!("scripts{i}"), |sc| {
            add_packages(sc, &["kiln-attack-scripts"]);
            sc["PostInstallScripts"] =
                json!([script(work.path(), "ran.sh", "echo ran > /etc/kiln-ran")]);
        });
        let out = work.path().join(format!("scripts{i}"));
        let (ran, root) = compose_run(&config, &out, &[&repo], &[]);
        host.check();
        if i == 0 {
            ran.fails_naming(&["PostInstallScripts", "/tmp/kiln-scripts", "not a directory"]);
            assert!(!root.exists());
        } else {
            // The script went to the link's target inside the image, ran, and was removed.
            ran.succeeds();
            let ran_file = std::fs::read_to_string(root.join("etc/kiln-ran")).unwrap();
            assert_eq!(ran_file, "ran\n");
            assert_eq!(kind(&root.join("tmp/kiln-scripts")), "absent");
        }
    }
}

// --- 4. Mounts left behind --------------------------------------------------------------------

/// Shell lines that mount a tmpfs, a proc and the image root itself, and bind the root into
/// the directory kiln removes after the script.
const MOUNTS: &str = "set -e\n\
    mkdir -p /mnt /x /y /tmp/kiln-scripts/bound\n\
    mount -t tmpfs none /mnt\n\
    echo left > /mnt/on-tmpfs\n\
    mount -t proc proc /x\n\
    mount --bind / /y\n\
    mount --bind / /tmp/kiln-scripts/bound\n\
    echo mounted\n";

#[test]
fn mounts_left_by_scripts_and_scriptlets_vanish_with_the_sandbox() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("mounts", 31404, &[]);
    let repo = work.path().join("repo");
    let post = "%post\nset -e\nmkdir -p /mnt2 /y2\nmount -t tmpfs none /mnt2\n\
                echo left > /mnt2/on-tmpfs\nmount --bind / /y2\n";
    rpmbuild(
        &repo,
        &Package {
            name: "kiln-attack-mounts",
            version: "1",
            install: "",
            files: "",
            scriptlets: post,
        },
    );
    let config = container_config(work.path(), "mounts", |sc| {
        add_packages(sc, &["kiln-attack-mounts"]);
        sc["PostInstallScripts"] = json!([script(work.path(), "mounts.sh", MOUNTS)]);
    });
    for round in ["first", "second"] {
        let (ran, root) = compose_run(&config, &work.path().join(round), &[&repo], &[]);
        host.check();
        ran.succeeds();
        assert!(ran.stderr.contains("mounted"), "{}", ran.stderr);
        // The mount points are empty directories of the image; the root kept its files.
        for d in ["mnt", "x", "y", "mnt2", "y2"] {
            let entries = std::fs::read_dir(root.join(d)).unwrap().count();
            assert_eq!(entries, 0, "/{d} is empty");
        }
        assert!(root.join("etc/passwd").is_file() && root.join("usr/bin/sample-app").is_file());
        assert!(!root.join("tmp/kiln-scripts").exists());
    }
}

// --- 5. Scripts that do not end ---------------------------------------------------------------

#[test]
fn a_script_that_never_ends_is_stopped_at_the_timeout() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("timeout", 31405, &[]);
    let config = container_config(work.path(), "forever", |sc| {
        sc["PostInstallScripts"] = json!([script(work.path(), "forever.sh", "sleep 31405")]);
    });
    let started = Instant::now();
    let (ran, root) = compose_run(
        &config,
        &work.path().join("forever"),
        &[],
        &["--script-timeout", "3"],
    );
    host.check();
    ran.fails_naming(&[
        "PostInstallScripts",
        "forever.sh",
        "did not finish within 3 s",
    ]);
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(!root.exists(), "no result under the final name");
}

#[test]
fn background_processes_of_a_script_end_with_it() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("background", 31406, &[]);
    let body = "sleep 31406 &\nsetsid sleep 31406 &\n(sleep 31406 &) &\n\
                nohup sleep 31406 > /dev/null 2>&1 &\necho started";
    let config = container_config(work.path(), "background", |sc| {
        sc["PostInstallScripts"] = json!([script(work.path(), "background.sh", body)]);
    });
    let (ran, _) = compose_run(&config, &work.path().join("background"), &[], &[]);
    host.check();
    ran.succeeds();
}

// --- 6. kiln stopped by a signal --------------------------------------------------------------

/// Composes `config`, sends `signal` to kiln once a process with `marker` in its command line
/// runs, and checks the host.
fn interrupt(host: &Host, config: &Path, out: &Path, repos: &[&Path], signal: &str) {
    let mut sent = false;
    let ran = run(
        &mut compose(config, out, repos, &[]),
        &out.with_extension("log"),
        |pid| {
            if !sent && !processes_with(&host.marker).is_empty() {
                let o = Command::new("kill")
                    .arg(format!("-{signal}"))
                    .arg(pid.to_string())
                    .output()
                    .unwrap();
                assert!(o.status.success());
                sent = true;
            }
        },
    );
    assert!(sent, "the hostile process never ran: {}", ran.stderr);
    assert!(!ran.ok());
    host.check();
    assert!(!out.join("rootfs").exists());
}

#[test]
fn stopping_kiln_ends_the_script_it_runs() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("signal-script", 31407, &[]);
    let config = container_config(work.path(), "long", |sc| {
        sc["PostInstallScripts"] = json!([script(work.path(), "long.sh", "sleep 31407")]);
    });
    for signal in ["TERM", "INT"] {
        interrupt(&host, &config, &work.path().join(signal), &[], signal);
    }
}

#[test]
fn stopping_kiln_ends_the_rpm_transaction_it_runs() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("signal-rpm", 31408, &[]);
    let repo = work.path().join("repo");
    rpmbuild(
        &repo,
        &Package {
            name: "kiln-attack-slow",
            version: "1",
            install: "",
            files: "",
            scriptlets: "%post\nsleep 31408\n",
        },
    );
    let config = container_config(work.path(), "slow", |sc| {
        add_packages(sc, &["kiln-attack-slow"]);
    });
    interrupt(&host, &config, &work.path().join("slow"), &[&repo], "TERM");
}

// --- 7. Floods of output ----------------------------------------------------------------------

#[test]
fn a_script_printing_500_mb_leaves_kilns_memory_small() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("flood", 31409, &[]);
    // One endless line, then many short ones.
    let body = "head -c 500000000 /dev/zero | tr '\\0' x\nyes | head -c 1000000";
    let config = container_config(work.path(), "flood", |sc| {
        sc["PostInstallScripts"] = json!([script(work.path(), "flood.sh", body)]);
    });
    let out = work.path().join("flood");
    let log = out.with_extension("log");
    let mut peak_kib = 0u64;
    let ran = run(&mut compose(&config, &out, &[], &[]), &log, |pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        peak_kib = peak_kib.max(hwm);
    });
    let _ = std::fs::remove_file(&log);
    host.check();
    ran.succeeds();
    assert!(peak_kib > 0, "kiln's memory was read");
    assert!(peak_kib < 200 << 10, "kiln's peak RSS was {peak_kib} KiB");
}

// --- 8. What scripts and scriptlets see -------------------------------------------------------

/// Shell lines that fail unless /dev/null is a character device and /proc/self is there, write
/// to /dev/null, and list the network interfaces into `<out>`.
fn probe(out: &str) -> String {
    format!(
        "set -e\n\
         test -c /dev/null\n\
         test -e /proc/self/status\n\
         echo discarded > /dev/null\n\
         mkdir -p /var/log\n\
         sed -n 's/^ *\\([^:]*\\):.*/\\1/p' /proc/net/dev | sort > {out}\n"
    )
}

/// The interfaces a probe listed.
fn interfaces(root: &Path, file: &str) -> String {
    std::fs::read_to_string(root.join(file)).unwrap()
}

#[test]
fn scripts_and_scriptlets_get_dev_proc_and_no_network() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("probe", 31410, &[]);
    let repo = work.path().join("repo");
    let scriptlets = format!(
        "%post\n{}\n%posttrans\n{}\n",
        probe("/var/log/net-post"),
        probe("/var/log/net-posttrans")
    );
    rpmbuild(
        &repo,
        &Package {
            name: "kiln-attack-probe",
            version: "1",
            install: "",
            files: "",
            scriptlets: &scriptlets,
        },
    );
    let sys_probe = format!(
        "{}ls /sys/class/net | sort > /var/log/net-sys\n",
        probe("/var/log/net-script")
    );
    let config = container_config(work.path(), "probe", |sc| {
        add_packages(sc, &["kiln-attack-probe"]);
        sc["PostInstallScripts"] = json!([script(work.path(), "probe.sh", &sys_probe)]);
    });
    let mut host_ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host_ifaces.sort();
    for (network, extra) in [(false, &[][..]), (true, &["--sandbox-network"][..])] {
        let out = work.path().join(format!("probe-{network}"));
        let (ran, root) = compose_run(&config, &out, &[&repo], extra);
        host.check();
        ran.succeeds();
        let want = if network {
            host_ifaces.iter().map(|i| format!("{i}\n")).collect()
        } else {
            "lo\n".to_string()
        };
        for file in [
            "var/log/net-post",
            "var/log/net-posttrans",
            "var/log/net-script",
            "var/log/net-sys",
        ] {
            assert_eq!(interfaces(&root, file), want, "{file}, network {network}");
        }
        // Writing to /dev/null wrote nothing into the image's /dev.
        let null = std::fs::symlink_metadata(root.join("dev/null"));
        assert!(
            null.as_ref()
                .map_or(true, |m| m.file_type().is_char_device()),
            "{null:?}"
        );
    }
}

// --- 9. A hostile grub2-pc --------------------------------------------------------------------

#[test]
fn a_hostile_grub2_pc_payload_is_not_followed_out_of_its_folder() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new(
        "grub",
        31411,
        &["/usr/lib/grub/i386-pc", "/etc/kiln-attack-grub"],
    );
    let repo = work.path().join("repo");
    // Its i386-pc files are links to host files, beside an absolute /etc path.
    let install = format!(
        "mkdir -p %{{buildroot}}/usr/lib/grub/i386-pc %{{buildroot}}/etc\n\
         ln -s {etc} %{{buildroot}}/usr/lib/grub/i386-pc/boot.img\n\
         ln -s {dir}/secret %{{buildroot}}/usr/lib/grub/i386-pc/core.img\n\
         ln -s {dir}/dir %{{buildroot}}/usr/lib/grub/i386-pc/fs\n\
         echo hostile > %{{buildroot}}/etc/kiln-attack-grub\n",
        etc = host.etc.display(),
        dir = host.dir.display()
    );
    rpmbuild(
        &repo,
        &Package {
            name: "grub2-pc",
            version: "99",
            install: &install,
            files: "/usr/lib/grub/i386-pc\n/etc/kiln-attack-grub",
            scriptlets: "",
        },
    );
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(demo_config("demo-legacy.json")).unwrap())
            .unwrap();
    let sc = &mut config["SystemConfigs"][0];
    sc["PackageLists"] = json!([demo_config("packagelists/demo-packages.json")]);
    sc["PostInstallScripts"] = json!([]);
    let path = work.path().join("grub.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = work.path().join("grub");
    let (ran, _) = compose_run(&path, &out, &[&repo], &[]);
    host.check();
    ran.fails_naming(&["grub2-pc-99", "boot.img"]);
    assert!(!out.join("disk0.raw").exists());
}

// --- 10. Devices and FIFOs as input files -----------------------------------------------------

#[test]
fn devices_and_fifos_as_input_files_fail_fast_naming_the_entry() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("inputs", 31412, &[]);
    let fifo = work.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.display().to_string();
    type Edit = fn(&mut Value, &str);
    let cases: [(&str, Edit); 3] = [
        ("SSHPubKeyPaths", |sc, p| {
            sc["Users"][0]["SSHPubKeyPaths"] = json!([p])
        }),
        ("AdditionalFiles", |sc, p| {
            sc["AdditionalFiles"] = json!({ p: "/etc/x" })
        }),
        ("PostInstallScripts", |sc, p| {
            sc["PostInstallScripts"] = json!([{ "Path": p }])
        }),
    ];
    for (entry, edit) in cases {
        for source in ["/dev/zero", fifo.as_str()] {
            let name = format!("{entry}-{}", source.len());
            let config = container_config(work.path(), &name, |sc| edit(sc, source));
            let build = work.path().join(&name);
            let mut cmd = common::build_config_command(&config, &build);
            let started = Instant::now();
            let ran = run(&mut cmd, &build.with_extension("log"), |_| {});
            ran.fails_naming(&[entry, source]);
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{entry}: {source}"
            );
        }
    }
    host.check();
}

// --- 11. Account names that would inject lines ------------------------------------------------

#[test]
fn user_names_that_would_inject_lines_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("names", 31413, &[]);
    for (i, name) in ["evil:0:0::/:/bin/sh", "evil\nroot2::0:0::/:/bin/sh"]
        .iter()
        .enumerate()
    {
        let config = container_config(work.path(), &format!("name{i}"), |sc| {
            sc["Users"][0]["Name"] = json!(name);
        });
        let (ran, root) = compose_run(&config, &work.path().join(format!("name{i}")), &[], &[]);
        ran.fails_naming(&["Users[0].Name"]);
        assert!(!root.exists(), "no image");
    }
    host.check();
}

// --- 12. Mounts only inside the sandbox's namespace -------------------------------------------

#[test]
fn strace_sees_mounts_only_inside_new_mount_namespaces() {
    let work = tempfile::tempdir().unwrap();
    let host = Host::new("strace", 31414, &[]);
    let config = container_config(work.path(), "strace", |sc| {
        sc["PostInstallScripts"] = json!([script(work.path(), "mounts.sh", MOUNTS)]);
    });
    let trace = work.path().join("trace");
    let out = work.path().join("strace");
    let mut cmd = Command::new("strace");
    cmd.args(common::STRACE_ARGS)
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(compose(&config, &out, &[], &[]).get_args());
    let ran = run(&mut cmd, &out.with_extension("log"), |_| {});
    host.check();
    ran.succeeds();
    let log = std::fs::read_to_string(&trace).unwrap();
    let calls = common::syscalls(&log);
    assert!(
        calls.iter().filter(|c| c.name == "mount").count() >= 3,
        "strace saw the sandbox's and the script's mounts"
    );
    let offending = common::mounts_outside_a_namespace(&log);
    assert!(offending.is_empty(), "{}", offending.join("\n"));
}

#[test]
fn the_strace_rule_tells_the_hosts_mounts_from_the_sandboxs() {
    let log = "\
10 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
11 unshare(CLONE_NEWNS|CLONE_NEWPID) = 0
10 <... clone resumed>) = 11
11 clone(child_stack=NULL, flags=SIGCHLD) = 12
12 clone(child_stack=NULL, flags=SIGCHLD) = 2 /* 13 in strace's PID NS */
10 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
15 unshare(CLONE_NEWNS <unfinished ...>
10 <... clone resumed>) = 15
15 <... unshare resumed>)            = 0
15 mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE, NULL) = 0
12 mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE, NULL) = 0
13 mount(\"/\", \"/y\", NULL, MS_BIND, NULL) = 0
11 pivot_root(\".\", \".\") = 0
10 clone(child_stack=NULL, flags=SIGCHLD) = 14
14 mount(\"tmpfs\", \"/mnt\", \"tmpfs\", 0, NULL) = 0
10 umount2(\"/mnt\", MNT_DETACH) = -1 EINVAL (Invalid argument)
12 openat(AT_FDCWD, \"/dev/loop0\", O_RDWR) = 5
+++ exited with 0 +++
";
    assert_eq!(
        common::mounts_outside_a_namespace(log),
        [
            "14 mount(\"tmpfs\", \"/mnt\", \"tmpfs\", 0, NULL) = 0",
            "10 umount2(\"/mnt\", MNT_DETACH) = -1 EINVAL (Invalid argument)",
            "12 openat(AT_FDCWD, \"/dev/loop0\", O_RDWR) = 5",
        ]
    );
}
