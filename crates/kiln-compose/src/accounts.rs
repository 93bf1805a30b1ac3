//! Groups and users written straight into an image root's `/etc/passwd`, `group`, `shadow` and
//! `gshadow`, with the results shadow-utils' `groupadd`, `useradd -m` and `usermod -a -G` give
//! inside the image (SPEC §3.5 step 8, §3.8) — without running the image's tools in a chroot.
//!
//! The image's own `/etc/login.defs` (UID/GID ranges, `USERGROUPS_ENAB`, `UMASK`, `HOME_MODE`)
//! and `/etc/default/useradd` (`GROUP`, `HOME`, `SHELL`, `SKEL`) decide the defaults, as they
//! do for useradd.

use kiln_sandbox::root::{self, ImageRoot};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

/// Why an account could not be written; each names the user or group.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] root::Error),
    #[error("{path}: line {line} is not a valid entry")]
    Malformed { path: String, line: usize },
    #[error("group '{0}' already exists")]
    GroupExists(String),
    #[error("{what} {id} of {kind} '{name}' is already used by {kind} '{owner}'")]
    IdTaken {
        what: &'static str,
        kind: &'static str,
        name: String,
        id: u32,
        owner: String,
    },
    #[error("user '{0}' already exists")]
    UserExists(String),
    #[error("user '{user}': group '{group}' does not exist (add it to the config's Groups)")]
    NoSuchGroup { user: String, group: String },
    #[error("user '{0}' not found")]
    NoSuchUser(String),
    #[error("no free {what} left in {min}..={max} (the image's /etc/login.defs)")]
    Exhausted {
        what: &'static str,
        min: u32,
        max: u32,
    },
    #[error("invalid shadow entry for user ({user}): 9 fields expected, but {found} found")]
    ShadowFields { user: String, found: usize },
    #[error("user '{user}': home directory: {source}")]
    Home { user: String, source: root::Error },
}

/// A user to add, as the config gives it.
#[derive(Debug, Clone, Default)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub uid: Option<u32>,
    /// The crypt hash for shadow; `None` locks the password (`!`).
    pub hash: Option<&'a str>,
    pub home: Option<&'a str>,
    /// A group name or number.
    pub primary_group: Option<&'a str>,
}

/// What useradd decided for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// A colon-separated account file (`None` when the image has none, e.g. no gshadow).
struct Table {
    /// The path in the image (`/etc/passwd`).
    path: String,
    rows: Option<Vec<Vec<String>>>,
}

impl Table {
    fn read(root: &ImageRoot, name: &str, fields: usize) -> Result<Table, Error> {
        let path = format!("/etc/{name}");
        let text = match root.read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Table { path, rows: None })
            }
            Err(e) => return Err(e.into()),
        };
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let row: Vec<String> = line.split(':').map(str::to_string).collect();
            if row.len() < fields {
                return Err(Error::Malformed { path, line: i + 1 });
            }
            rows.push(row);
        }
        Ok(Table {
            path,
            rows: Some(rows),
        })
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.rows.as_ref()?.iter().position(|r| r[0] == name)
    }

    fn push(&mut self, row: &[&str]) {
        if let Some(rows) = &mut self.rows {
            rows.push(row.iter().map(|s| s.to_string()).collect());
        }
    }

    /// Writes the file under a temporary name and renames it over the old one, keeping its mode.
    fn write(&self, root: &ImageRoot) -> Result<(), Error> {
        let Some(rows) = &self.rows else {
            return Ok(());
        };
        let mode = root.metadata(&self.path)?.permissions().mode() & 0o7777;
        let text: String = rows.iter().map(|r| r.join(":") + "\n").collect();
        root.replace(&self.path, text, mode)?;
        Ok(())
    }
}

/// The account settings of the image (login.defs and useradd defaults).
#[derive(Debug, Clone)]
struct Defaults {
    uid_range: (u32, u32),
    gid_range: (u32, u32),
    user_groups: bool,
    home_mode: u32,
    group: String,
    home_base: String,
    shell: String,
    skel: String,
}

impl Defaults {
    fn read(root: &ImageRoot) -> Defaults {
        let text = |p: &str| root.read_to_string(p).unwrap_or_default();
        let mut defs = HashMap::new();
        for line in text("/etc/login.defs").lines() {
            let mut words = line.split_whitespace();
            if let (Some(k), Some(v)) = (words.next(), words.next()) {
                if !k.starts_with('#') {
                    defs.insert(k.to_string(), v.to_string());
                }
            }
        }
        let mut useradd = HashMap::new();
        for line in text("/etc/default/useradd").lines() {
            if let Some((k, v)) = line.split_once('=') {
                useradd.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let num =
            |k: &str, default: u32| defs.get(k).and_then(|v| parse_number(v)).unwrap_or(default);
        let umask = num("UMASK", 0o022);
        let home_mode = defs
            .get("HOME_MODE")
            .and_then(|v| u32::from_str_radix(v, 8).ok())
            .unwrap_or(0o777 & !umask);
        let with = |k: &str, default: &str| useradd.get(k).cloned().unwrap_or(default.into());
        Defaults {
            uid_range: (num("UID_MIN", 1000), num("UID_MAX", 60000)),
            gid_range: (num("GID_MIN", 1000), num("GID_MAX", 60000)),
            user_groups: defs
                .get("USERGROUPS_ENAB")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            home_mode,
            group: with("GROUP", "100"),
            home_base: with("HOME", "/home"),
            shell: with("SHELL", ""),
            skel: with("SKEL", "/etc/skel"),
        }
    }
}

/// login.defs numbers: decimal, `0`-prefixed octal or `0x` hex, as shadow reads them.
fn parse_number(v: &str) -> Option<u32> {
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if v.len() > 1 && v.starts_with('0') {
        u32::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse().ok()
    }
}

/// The account files of an image root, changed in memory and written back by [`Accounts::save`].
pub struct Accounts<'r> {
    root: &'r ImageRoot,
    defaults: Defaults,
    passwd: Table,
    group: Table,
    shadow: Table,
    gshadow: Table,
}

impl<'r> Accounts<'r> {
    /// Reads the account files and settings of the image `root`.
    pub fn open(root: &'r ImageRoot) -> Result<Accounts<'r>, Error> {
        Ok(Accounts {
            root,
            defaults: Defaults::read(root),
            passwd: Table::read(root, "passwd", 7)?,
            group: Table::read(root, "group", 4)?,
            shadow: Table::read(root, "shadow", 2)?,
            gshadow: Table::read(root, "gshadow", 4)?,
        })
    }

    /// Writes the changed files back (each replaced atomically, keeping its mode).
    pub fn save(&self) -> Result<(), Error> {
        for t in [&self.passwd, &self.group, &self.shadow, &self.gshadow] {
            t.write(self.root)?;
        }
        Ok(())
    }

    fn ids(table: &Table, column: usize) -> impl Iterator<Item = (u32, &str)> {
        table
            .rows
            .iter()
            .flatten()
            .filter_map(move |r| Some((r[column].parse().ok()?, r[0].as_str())))
    }

    /// The next free id as shadow-utils picks it: one above the highest id in use in the range,
    /// else the lowest free one; `preferred` first when it is free.
    fn free_id(
        used: &[u32],
        (min, max): (u32, u32),
        preferred: Option<u32>,
        what: &'static str,
    ) -> Result<u32, Error> {
        if let Some(p) = preferred.filter(|p| (min..=max).contains(p) && !used.contains(p)) {
            return Ok(p);
        }
        let highest = used
            .iter()
            .copied()
            .filter(|i| (min..=max).contains(i))
            .max();
        match highest {
            None => Ok(min),
            Some(h) if h < max => Ok(h + 1),
            Some(_) => (min..=max)
                .find(|i| !used.contains(i))
                .ok_or(Error::Exhausted { what, min, max }),
        }
    }

    fn gid_of(&self, group: &str) -> Option<u32> {
        let by_name = self
            .group
            .find(group)
            .and_then(|i| self.group.rows.as_ref()?[i][2].parse().ok());
        by_name.or_else(|| {
            let n: u32 = group.parse().ok()?;
            Self::ids(&self.group, 2).any(|(g, _)| g == n).then_some(n)
        })
    }

    /// `groupadd <name> [-g <gid>]`.
    pub fn add_group(&mut self, name: &str, gid: Option<u32>) -> Result<u32, Error> {
        self.add_group_preferring(name, gid, None)
    }

    fn add_group_preferring(
        &mut self,
        name: &str,
        gid: Option<u32>,
        preferred: Option<u32>,
    ) -> Result<u32, Error> {
        if self.group.find(name).is_some() {
            return Err(Error::GroupExists(name.into()));
        }
        let gid = choose_id(
            &self.group,
            gid,
            self.defaults.gid_range,
            preferred,
            ("GID", "group", name),
        )?;
        let text = gid.to_string();
        self.group.push(&[name, "x", &text, ""]);
        self.gshadow.push(&[name, "!", "", ""]);
        Ok(gid)
    }

    /// `useradd <name> -m [-p <hash>] [-u <uid>] [-d <home>] [-g <group>]`, the last-change
    /// date being `days` since 1970 (the build time).
    pub fn add_user(&mut self, user: &NewUser, days: u64) -> Result<Added, Error> {
        let name = user.name;
        if self.passwd.find(name).is_some() {
            return Err(Error::UserExists(name.into()));
        }
        let uid = choose_id(
            &self.passwd,
            user.uid,
            self.defaults.uid_range,
            None,
            ("UID", "user", name),
        )?;
        // Everything that can fail is checked before anything changes.
        let home = match user.home {
            Some(h) => h.to_string(),
            None => format!("{}/{name}", self.defaults.home_base.trim_end_matches('/')),
        };
        let climbs = std::path::Path::new(&home)
            .components()
            .any(|c| c == std::path::Component::ParentDir);
        if climbs {
            return Err(Error::Home {
                user: name.into(),
                source: root::Error {
                    op: "creating",
                    path: home.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the path leads outside the image root through '..'",
                    ),
                },
            });
        }
        let gid = match user.primary_group {
            Some(g) => self.gid_of(g).ok_or_else(|| Error::NoSuchGroup {
                user: name.into(),
                group: g.into(),
            })?,
            None if self.defaults.user_groups => {
                if self.group.find(name).is_some() {
                    return Err(Error::GroupExists(name.into()));
                }
                self.add_group_preferring(name, None, Some(uid))?
            }
            None => {
                let g = self.defaults.group.clone();
                self.gid_of(&g).ok_or(Error::NoSuchGroup {
                    user: name.into(),
                    group: g,
                })?
            }
        };
        let (uid_text, gid_text, days_text) = (uid.to_string(), gid.to_string(), days.to_string());
        let shell = self.defaults.shell.clone();
        self.passwd
            .push(&[name, "x", &uid_text, &gid_text, "", &home, &shell]);
        self.shadow.push(&[
            name,
            user.hash.unwrap_or("!"),
            &days_text,
            "",
            "",
            "",
            "",
            "",
            "",
        ]);
        self.make_home(&home, uid, gid)
            .map_err(|source| Error::Home {
                user: name.into(),
                source,
            })?;
        Ok(Added { uid, gid, home })
    }

    /// Creates the home directory (parents as root, 0755) and copies the skeleton into it.
    fn make_home(&self, home: &str, uid: u32, gid: u32) -> Result<(), root::Error> {
        let home = std::path::Path::new(home);
        if let Some(parent) = home.parent() {
            self.root.create_dir_all(parent, 0o755)?;
        }
        if self.root.exists(home) {
            return Ok(()); // useradd -m leaves an existing home as it is
        }
        self.root.create_dir_all(home, self.defaults.home_mode)?;
        self.root.set_mode(home, self.defaults.home_mode)?;
        self.root.lchown(home, uid, gid)?;
        let skel = std::path::Path::new(&self.defaults.skel);
        if self.root.is_dir(skel) {
            copy_owned(self.root, skel, home, uid, gid)?;
        }
        Ok(())
    }

    /// `usermod -a -G <groups> <name>`: the user joins each group's member list (group and
    /// gshadow).
    pub fn join_groups(&mut self, name: &str, groups: &[&str]) -> Result<(), Error> {
        if self.passwd.find(name).is_none() {
            return Err(Error::NoSuchUser(name.into()));
        }
        for g in groups {
            let Some(i) = self.group.find(g) else {
                return Err(Error::NoSuchGroup {
                    user: name.into(),
                    group: g.to_string(),
                });
            };
            add_member(
                &mut self.group.rows.as_mut().expect("found in it")[i][3],
                name,
            );
            if let Some(j) = self.gshadow.find(g) {
                add_member(
                    &mut self.gshadow.rows.as_mut().expect("found in it")[j][3],
                    name,
                );
            }
        }
        Ok(())
    }

    fn shadow_row(&mut self, name: &str) -> Result<&mut Vec<String>, Error> {
        let i = self
            .shadow
            .find(name)
            .ok_or_else(|| Error::NoSuchUser(name.into()))?;
        Ok(&mut self.shadow.rows.as_mut().expect("found in it")[i])
    }

    /// Sets an existing user's password hash (root's: upstream writes `*` for an empty one).
    pub fn set_password(&mut self, name: &str, hash: &str) -> Result<(), Error> {
        let row = self.shadow_row(name)?;
        row[1] = if hash.is_empty() {
            "*".into()
        } else {
            hash.into()
        };
        Ok(())
    }

    /// PasswordExpiresDays as upstream applies it: -1 clears the aging fields (never expires);
    /// n ≥ 0 sets the *account* expiration to the last change (today if unset) plus n days.
    pub fn set_password_expiry(&mut self, name: &str, days: i64, today: u64) -> Result<(), Error> {
        let row = self.shadow_row(name)?;
        if row.len() != 9 {
            return Err(Error::ShadowFields {
                user: name.into(),
                found: row.len(),
            });
        }
        if days < 0 {
            for f in &mut row[4..9] {
                f.clear();
            }
        } else if days > 0 {
            if row[2].is_empty() {
                row[2] = today.to_string();
            }
            let last: i64 = row[2].parse().unwrap_or(today as i64);
            row[7] = (last + days).to_string();
        }
        Ok(())
    }

    /// StartupCommand: the user's login shell field.
    pub fn set_login_shell(&mut self, name: &str, command: &str) -> Result<(), Error> {
        let i = self
            .passwd
            .find(name)
            .ok_or_else(|| Error::NoSuchUser(name.into()))?;
        self.passwd.rows.as_mut().expect("found in it")[i][6] = command.into();
        Ok(())
    }

    /// The home directory, UID and GID of a user, from passwd.
    pub fn user(&self, name: &str) -> Option<Added> {
        let row = &self.passwd.rows.as_ref()?[self.passwd.find(name)?];
        Some(Added {
            uid: row[2].parse().ok()?,
            gid: row[3].parse().ok()?,
            home: row[5].clone(),
        })
    }
}

/// The id asked for, if no entry of `table` (passwd or group) has it, else the next free one.
/// `(what, kind, name)` name the entry for messages ("UID", "user", "alice").
fn choose_id(
    table: &Table,
    requested: Option<u32>,
    range: (u32, u32),
    preferred: Option<u32>,
    (what, kind, name): (&'static str, &'static str, &str),
) -> Result<u32, Error> {
    let used: Vec<(u32, &str)> = Accounts::ids(table, 2).collect();
    match requested {
        Some(id) => match used.iter().find(|(u, _)| *u == id) {
            Some((_, owner)) => Err(Error::IdTaken {
                what,
                kind,
                name: name.into(),
                id,
                owner: owner.to_string(),
            }),
            None => Ok(id),
        },
        None => {
            let ids: Vec<u32> = used.iter().map(|(u, _)| *u).collect();
            Accounts::free_id(&ids, range, preferred, what)
        }
    }
}

fn add_member(members: &mut String, name: &str) {
    if members.split(',').any(|m| m == name) {
        return;
    }
    if !members.is_empty() {
        members.push(',');
    }
    members.push_str(name);
}

/// Copies a skeleton tree inside the image, every entry owned by `uid:gid` (modes kept,
/// symlinks as links, special files left out).
fn copy_owned(
    root: &ImageRoot,
    from: &std::path::Path,
    to: &std::path::Path,
    uid: u32,
    gid: u32,
) -> Result<(), root::Error> {
    for entry in root.read_dir(from)? {
        let (src, dst) = (from.join(&entry.name), to.join(&entry.name));
        let meta = root.symlink_metadata(&src)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_symlink() {
            root.symlink(root.read_link(&src)?, &dst)?;
        } else if meta.is_dir() {
            root.create_dir_all(&dst, mode)?;
            root.set_mode(&dst, mode)?;
            copy_owned(root, &src, &dst, uid, gid)?;
        } else if meta.is_file() {
            root.copy_in(&mut root.open_file(&src)?, &dst, mode)?;
        } else {
            continue;
        }
        root.lchown(&dst, uid, gid)?;
    }
    Ok(())
}
