//! A system config's `Groups` and `Users` applied to an image root, step by step as upstream's
//! imager does (SPEC §3.5 step 8 and §3.8): groups, then each user's password, account,
//! password expiry, secondary groups, SSH keys and login shell.

use crate::accounts::{self, Accounts, NewUser};
use crate::crypt;
use kiln_config::input::{read_bounded, SSH_KEY_LIMIT};
use kiln_config::model::{Group, User};
use kiln_formats::ident::Identity;
use kiln_sandbox::root::{self, ImageRoot};
use std::path::Path;

/// Why the users or groups could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Accounts(#[from] accounts::Error),
    #[error("group '{group}': GID '{gid}' is not a number")]
    Gid { group: String, gid: String },
    #[error("user '{user}': UID '{uid}' is not a number")]
    Uid { user: String, uid: String },
    #[error("user '{user}': {source}")]
    Image { user: String, source: root::Error },
    #[error("the image has no /etc/passwd (missing, or a symlink leading nowhere inside the image), so users cannot be added: the packages must provide it (filesystem, setup or shadow-utils)")]
    NoPasswd,
    #[error("user '{user}': {source}")]
    Key {
        user: String,
        source: kiln_config::input::InputError,
    },
}

/// Applies `groups` and `users` to the image at `root`. SSH key paths are relative to
/// `base_dir` (the config file's directory). Password salts and the password's last-change day
/// come from `identity`.
pub fn apply(
    root: &ImageRoot,
    groups: &[Group],
    users: &[User],
    base_dir: &Path,
    identity: &Identity,
) -> Result<(), Error> {
    if !users.is_empty() && !root.metadata("/etc/passwd").is_ok_and(|m| m.is_file()) {
        return Err(Error::NoPasswd);
    }
    let mut accounts = Accounts::open(root)?;
    for g in groups {
        let gid = parse_id(&g.gid).map_err(|_| Error::Gid {
            group: g.name.clone(),
            gid: g.gid.clone(),
        })?;
        accounts.add_group(&g.name, gid)?;
    }
    let today = identity.unix_time() / 86400;
    let has_shadow = root.exists("/etc/shadow");
    for u in users {
        let hash = if u.password_hashed || u.password.is_empty() {
            u.password.clone()
        } else {
            let salt = crypt::salt(identity, &format!("user.{}", u.name));
            crypt::sha512_crypt(u.password.as_bytes(), &salt, None)
        };
        if u.name == "root" {
            // Root exists already; its UID is never changed (the validator warns).
            if has_shadow {
                accounts.set_password("root", &hash)?;
            }
        } else {
            let uid = parse_id(&u.uid).map_err(|_| Error::Uid {
                user: u.name.clone(),
                uid: u.uid.clone(),
            })?;
            accounts.add_user(
                &NewUser {
                    name: &u.name,
                    uid,
                    hash: (!hash.is_empty()).then_some(hash.as_str()),
                    home: non_empty(&u.home_directory),
                    primary_group: non_empty(&u.primary_group),
                },
                today,
            )?;
        }
        if u.password_expires_days != 0 && has_shadow {
            accounts.set_password_expiry(&u.name, u.password_expires_days, today)?;
        }
        if !u.secondary_groups.is_empty() {
            let groups: Vec<&str> = u.secondary_groups.iter().map(String::as_str).collect();
            accounts.join_groups(&u.name, &groups)?;
        }
        if !u.ssh_pub_key_paths.is_empty() || !u.ssh_pub_keys.is_empty() {
            let account = accounts
                .user(&u.name)
                .ok_or_else(|| accounts::Error::NoSuchUser(u.name.clone()))?;
            install_ssh_keys(root, u, &account, base_dir)?;
        }
        if !u.startup_command.is_empty() {
            accounts.set_login_shell(&u.name, &u.startup_command)?;
        }
    }
    if has_shadow && !users.iter().any(|u| u.name == "root") {
        accounts.set_password_expiry("root", -1, today)?;
    }
    accounts.save()?;
    Ok(())
}

fn parse_id(text: &str) -> Result<Option<u32>, std::num::ParseIntError> {
    let t = text.trim();
    if t.is_empty() {
        Ok(None)
    } else {
        t.parse().map(Some)
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Each key file copied to `~/.ssh/<name>`; `authorized_keys` = the files' lines, then the
/// literal keys, one per line; everything under `.ssh` owned by the user and mode 0700, as
/// upstream's `chown -R` and `chmod -R 0700` leave it.
fn install_ssh_keys(
    root: &ImageRoot,
    u: &User,
    account: &accounts::Added,
    base_dir: &Path,
) -> Result<(), Error> {
    let image = |source| Error::Image {
        user: u.name.clone(),
        source,
    };
    let ssh = Path::new(&account.home).join(".ssh");
    root.create_dir_all(&ssh, 0o700).map_err(image)?;
    let mut authorized = String::new();
    let mut written = vec![ssh.join("authorized_keys")];
    for key in &u.ssh_pub_key_paths {
        let src = base_dir.join(key);
        let data = read_bounded(&src, SSH_KEY_LIMIT, "SSH public key file").map_err(|source| {
            Error::Key {
                user: u.name.clone(),
                source,
            }
        })?;
        let text = String::from_utf8_lossy(&data);
        let name = src.file_name().unwrap_or_default();
        let dst = ssh.join(name);
        root.write(&dst, text.as_bytes(), 0o700).map_err(image)?;
        written.push(dst);
        for line in text.lines() {
            authorized.push_str(line);
            authorized.push('\n');
        }
    }
    for key in &u.ssh_pub_keys {
        authorized.push_str(key);
        authorized.push('\n');
    }
    root.write(&written[0], authorized, 0o700).map_err(image)?;
    written.push(ssh.clone());
    for p in &written {
        root.set_mode(p, 0o700).map_err(image)?;
        root.lchown(p, account.uid, account.gid).map_err(image)?;
    }
    Ok(())
}
