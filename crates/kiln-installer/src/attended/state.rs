//! The attended installer's screens as a state machine: key events in, the next screen (and in
//! the end the user's choices) out. Nothing here touches a terminal or a disk, so every screen
//! and every rule is unit-tested.

use super::disks::BlockDevice;

/// A key, as the UI needs it (the terminal layer maps its events to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Backspace,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Esc,
    /// Ctrl-L: redraw the whole screen (console messages may have overwritten it).
    Redraw,
}

/// upstream's pages, in order (SPEC §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Eula,
    /// Only when the template has more than one SystemConfig.
    Choice,
    Disk,
    Encryption,
    Hostname,
    User,
    Confirm,
    Progress,
    Finish,
    Failed,
}

/// What the user chose: all the attended config needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    /// Index of the template's SystemConfig.
    pub system: usize,
    /// The target disk's device path.
    pub disk: String,
    /// The root's LUKS password; `None`: no encryption.
    pub encryption: Option<String>,
    pub hostname: String,
    pub user: String,
    pub password: String,
}

/// What the runner does after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Keep reading keys.
    Continue,
    /// Redraw everything, then keep reading keys.
    Redraw,
    /// Confirmed: write the config and install.
    Install(Choices),
    /// Leave the installer: `true` after a successful install.
    Quit(bool),
}

/// A text field of a form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
    /// Shown as `*`.
    pub secret: bool,
}

impl Field {
    fn new(label: &'static str, secret: bool) -> Self {
        Field {
            label,
            value: String::new(),
            secret,
        }
    }
}

/// The longest text a field takes (a hostname is at most 64, a user name 32).
const FIELD_MAX: usize = 128;

/// The whole UI's state.
#[derive(Debug, Clone)]
pub struct App {
    pub screen: Screen,
    pub eula: Vec<String>,
    pub eula_scroll: usize,
    /// The template's SystemConfig names.
    pub systems: Vec<String>,
    pub system: usize,
    pub disks: Vec<BlockDevice>,
    pub disk: usize,
    /// Which field (or button, after the fields) has the focus on a form or button screen.
    pub focus: usize,
    pub encryption: [Field; 2],
    /// Whether the imager supports an encrypted root (kiln's does: the screen is shown).
    pub encryption_supported: bool,
    pub hostname: Field,
    pub user: [Field; 3],
    /// Why the last Enter was refused, shown under the form.
    pub error: Option<String>,
    /// Progress of the install, 0–100, and the imager's last action.
    pub percent: u8,
    pub action: String,
    /// The last lines of the install (actions and notes).
    pub log: Vec<String>,
    /// Finish/Failed: what happened.
    pub outcome: Vec<String>,
}

/// The lines of the install log the Progress screen keeps.
const LOG_LINES: usize = 200;

impl App {
    /// The first screen, for a template with these SystemConfig names (at least one), the
    /// disks found, the EULA text and the template's hostname (the field's initial value).
    pub fn new(eula: &str, systems: Vec<String>, disks: Vec<BlockDevice>, hostname: &str) -> Self {
        let mut host = Field::new("Hostname", false);
        host.value = hostname.to_string();
        App {
            screen: Screen::Eula,
            eula: eula.lines().map(str::to_string).collect(),
            eula_scroll: 0,
            systems,
            system: 0,
            disks,
            disk: 0,
            focus: 0,
            encryption: [
                Field::new("Password", true),
                Field::new("Confirm password", true),
            ],
            encryption_supported: true,
            hostname: host,
            user: [
                Field::new("User name", false),
                Field::new("Password", true),
                Field::new("Confirm password", true),
            ],
            error: None,
            percent: 0,
            action: String::new(),
            log: Vec::new(),
            outcome: Vec::new(),
        }
    }

    /// The screens in order, those this install skips left out.
    fn pages(&self) -> Vec<Screen> {
        let mut v = vec![Screen::Eula];
        if self.systems.len() > 1 {
            v.push(Screen::Choice);
        }
        v.push(Screen::Disk);
        if self.encryption_supported {
            v.push(Screen::Encryption);
        }
        v.extend([Screen::Hostname, Screen::User, Screen::Confirm]);
        v
    }

    fn go(&mut self, screen: Screen) -> Outcome {
        self.screen = screen;
        self.focus = 0;
        self.error = None;
        Outcome::Redraw
    }

    fn next_page(&mut self) -> Outcome {
        let pages = self.pages();
        let at = pages.iter().position(|p| *p == self.screen).unwrap_or(0);
        let next = pages.get(at + 1).copied().unwrap_or(self.screen);
        self.go(next)
    }

    fn previous_page(&mut self) -> Outcome {
        let pages = self.pages();
        match pages.iter().position(|p| *p == self.screen) {
            Some(at) if at > 0 => self.go(pages[at - 1]),
            _ => Outcome::Continue,
        }
    }

    /// How many focus positions a screen has: its fields and buttons.
    pub fn focus_count(&self) -> usize {
        match self.screen {
            Screen::Eula | Screen::Confirm => 2,
            Screen::Choice => self.systems.len(),
            Screen::Disk => self.disks.len().max(1),
            Screen::Encryption => 2,
            Screen::Hostname => 1,
            Screen::User => 3,
            _ => 1,
        }
    }

    /// The field with the focus, on a form.
    fn field(&mut self) -> Option<&mut Field> {
        match self.screen {
            Screen::Encryption => self.encryption.get_mut(self.focus),
            Screen::Hostname => Some(&mut self.hostname),
            Screen::User => self.user.get_mut(self.focus),
            _ => None,
        }
    }

    /// One key.
    pub fn key(&mut self, key: Key) -> Outcome {
        if key == Key::Redraw {
            return Outcome::Redraw;
        }
        match self.screen {
            Screen::Progress => Outcome::Continue,
            Screen::Finish => match key {
                Key::Enter => Outcome::Quit(true),
                _ => Outcome::Continue,
            },
            Screen::Failed => match key {
                Key::Enter => Outcome::Quit(false),
                _ => Outcome::Continue,
            },
            Screen::Eula => self.eula_key(key),
            Screen::Choice | Screen::Disk => self.list_key(key),
            Screen::Encryption | Screen::Hostname | Screen::User => self.form_key(key),
            Screen::Confirm => self.confirm_key(key),
        }
    }

    fn move_focus(&mut self, key: Key) -> bool {
        let n = self.focus_count();
        match key {
            Key::Tab | Key::Down | Key::Right => self.focus = (self.focus + 1) % n,
            Key::BackTab | Key::Up | Key::Left => self.focus = (self.focus + n - 1) % n,
            _ => return false,
        }
        true
    }

    fn eula_key(&mut self, key: Key) -> Outcome {
        let last = self.eula.len().saturating_sub(1);
        match key {
            Key::Down => self.eula_scroll = (self.eula_scroll + 1).min(last),
            Key::Up => self.eula_scroll = self.eula_scroll.saturating_sub(1),
            Key::PageDown => self.eula_scroll = (self.eula_scroll + 10).min(last),
            Key::PageUp => self.eula_scroll = self.eula_scroll.saturating_sub(10),
            // Buttons: 0 Accept, 1 Decline.
            Key::Tab | Key::BackTab | Key::Left | Key::Right => {
                self.move_focus(key);
            }
            Key::Enter if self.focus == 0 => return self.next_page(),
            Key::Enter => {
                self.outcome = vec!["The license was declined: nothing was installed.".into()];
                return Outcome::Quit(false);
            }
            _ => {}
        }
        Outcome::Continue
    }

    fn list_key(&mut self, key: Key) -> Outcome {
        if self.move_focus(key) {
            return Outcome::Continue;
        }
        match key {
            Key::Esc => self.previous_page(),
            Key::Enter if self.screen == Screen::Choice => {
                self.system = self.focus;
                self.next_page()
            }
            Key::Enter if self.disks.is_empty() => {
                self.error = Some(
                    "No disk to install onto was found (SCSI/SATA, MMC, virtio or NVMe).".into(),
                );
                Outcome::Continue
            }
            Key::Enter => {
                self.disk = self.focus;
                self.next_page()
            }
            _ => Outcome::Continue,
        }
    }

    fn form_key(&mut self, key: Key) -> Outcome {
        match key {
            Key::Esc => return self.previous_page(),
            Key::Tab | Key::Down => {
                self.move_focus(Key::Tab);
            }
            Key::BackTab | Key::Up => {
                self.move_focus(Key::BackTab);
            }
            Key::Enter if self.focus + 1 < self.focus_count() => self.focus += 1,
            Key::Enter => match self.check_form() {
                Ok(()) => return self.next_page(),
                Err(e) => self.error = Some(e),
            },
            Key::Backspace => {
                if let Some(f) = self.field() {
                    f.value.pop();
                }
            }
            Key::Char(c) if !c.is_control() => {
                if let Some(f) = self.field() {
                    if f.value.chars().count() < FIELD_MAX {
                        f.value.push(c);
                    }
                }
            }
            _ => {}
        }
        Outcome::Continue
    }

    /// The form's rules; on a refusal the focus goes to the field at fault.
    fn check_form(&mut self) -> Result<(), String> {
        let r = match self.screen {
            Screen::Encryption => {
                let [p, c] = &self.encryption;
                if p.value != c.value {
                    Err((1, "The passwords differ.".to_string()))
                } else {
                    Ok(())
                }
            }
            Screen::Hostname => check_hostname(&self.hostname.value).map_err(|e| (0, e)),
            Screen::User => {
                let [name, p, c] = &self.user;
                check_user_name(&name.value)
                    .map_err(|e| (0, e))
                    .and_then(|_| {
                        if p.value.is_empty() {
                            Err((1, "The user needs a password.".to_string()))
                        } else if p.value != c.value {
                            Err((2, "The passwords differ.".to_string()))
                        } else {
                            Ok(())
                        }
                    })
            }
            _ => Ok(()),
        };
        r.map_err(|(focus, e)| {
            self.focus = focus;
            e
        })
    }

    fn confirm_key(&mut self, key: Key) -> Outcome {
        if self.move_focus(key) {
            return Outcome::Continue;
        }
        match key {
            Key::Esc => self.previous_page(),
            // Buttons: 0 Install, 1 Back.
            Key::Enter if self.focus == 0 => match self.choices() {
                Some(c) => {
                    self.go(Screen::Progress);
                    self.action = "Starting the installation".into();
                    Outcome::Install(c)
                }
                None => {
                    self.error = Some("No disk was chosen.".into());
                    Outcome::Continue
                }
            },
            Key::Enter => self.previous_page(),
            _ => Outcome::Continue,
        }
    }

    /// The choices made so far (`None` without a disk).
    pub fn choices(&self) -> Option<Choices> {
        let disk = self.disks.get(self.disk)?;
        let password = &self.encryption[0].value;
        Some(Choices {
            system: self.system,
            disk: disk.path.clone(),
            encryption: (self.encryption_supported && !password.is_empty())
                .then(|| password.clone()),
            hostname: self.hostname.value.clone(),
            user: self.user[0].value.clone(),
            password: self.user[1].value.clone(),
        })
    }

    /// A line from the install: upstream's `progress:N` / `action:text` protocol, or a note.
    pub fn install_line(&mut self, line: &str) {
        if let Some(n) = line.strip_prefix("progress:") {
            if let Ok(n) = n.trim().parse::<u8>() {
                self.percent = n.min(100);
            }
            return;
        }
        let text = line.strip_prefix("action:").unwrap_or(line).trim();
        if text.is_empty() {
            return;
        }
        if line.starts_with("action:") {
            self.action = text.to_string();
        }
        self.log.push(text.to_string());
        if self.log.len() > LOG_LINES {
            self.log.remove(0);
        }
    }

    /// The install ended: the Finish or the Failed screen.
    pub fn finished(&mut self, result: Result<Vec<String>, String>) {
        match result {
            Ok(notes) => {
                self.percent = 100;
                self.outcome = notes;
                self.go(Screen::Finish);
            }
            Err(e) => {
                self.outcome = vec![e];
                self.go(Screen::Failed);
            }
        }
    }
}

/// A hostname the installed system can use: at most 64 characters (HOST_NAME_MAX), labels of
/// 1–63 letters, digits and hyphens, none starting or ending with a hyphen.
pub fn check_hostname(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("The hostname is empty.".into());
    }
    if h.len() > 64 {
        return Err("The hostname is longer than 64 characters.".into());
    }
    for label in h.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("Each part of the hostname between dots has 1 to 63 characters.".into());
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("The hostname takes letters, digits, hyphens and dots only.".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("No part of the hostname starts or ends with a hyphen.".into());
        }
    }
    Ok(())
}

/// A user name useradd takes and that names a new user: `[a-z_][a-z0-9_-]*`, at most 32
/// characters, not `root`.
pub fn check_user_name(n: &str) -> Result<(), String> {
    let mut chars = n.chars();
    match chars.next() {
        None => return Err("The user name is empty.".into()),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return Err("The user name starts with a lowercase letter or '_'.".into())
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return Err("The user name takes lowercase letters, digits, '_' and '-' only.".into());
    }
    if n.len() > 32 {
        return Err("The user name is longer than 32 characters.".into());
    }
    if n == "root" {
        return Err("root exists already: choose the name of a new user.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disks() -> Vec<BlockDevice> {
        vec![
            BlockDevice {
                path: "/dev/vda".into(),
                size: 4 << 30,
                model: "".into(),
                ..Default::default()
            },
            BlockDevice {
                path: "/dev/nvme0n1".into(),
                size: 512 << 30,
                model: "Samsung SSD".into(),
                ..Default::default()
            },
        ]
    }

    fn app(systems: &[&str]) -> App {
        App::new(
            "line 1\nline 2\nline 3",
            systems.iter().map(|s| s.to_string()).collect(),
            disks(),
            "azurelinux",
        )
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            assert_eq!(app.key(Key::Char(c)), Outcome::Continue);
        }
    }

    #[test]
    fn a_whole_install_is_chosen_with_keys() {
        let mut a = app(&["Full", "Core"]);
        assert_eq!(a.screen, Screen::Eula);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Choice);
        a.key(Key::Down);
        a.key(Key::Enter);
        assert_eq!((a.screen, a.system), (Screen::Disk, 1));
        a.key(Key::Tab);
        a.key(Key::Enter);
        assert_eq!((a.screen, a.disk), (Screen::Encryption, 1));
        // No password: no encryption.
        a.key(Key::Enter);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Hostname);
        assert_eq!(a.hostname.value, "azurelinux");
        for _ in 0.."azurelinux".len() {
            a.key(Key::Backspace);
        }
        typed(&mut a, "box1");
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::User);
        typed(&mut a, "ada");
        a.key(Key::Enter);
        typed(&mut a, "s3cret");
        a.key(Key::Tab);
        typed(&mut a, "s3cret");
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Confirm);
        let want = Choices {
            system: 1,
            disk: "/dev/nvme0n1".into(),
            encryption: None,
            hostname: "box1".into(),
            user: "ada".into(),
            password: "s3cret".into(),
        };
        assert_eq!(a.key(Key::Enter), Outcome::Install(want));
        assert_eq!(a.screen, Screen::Progress);
        // Keys do nothing while installing.
        assert_eq!(a.key(Key::Esc), Outcome::Continue);
        a.install_line("progress:40");
        a.install_line("action:Installing packages");
        assert_eq!((a.percent, a.action.as_str()), (40, "Installing packages"));
        a.finished(Ok(vec!["boot entry made".into()]));
        assert_eq!((a.screen, a.percent), (Screen::Finish, 100));
        assert_eq!(a.key(Key::Enter), Outcome::Quit(true));
    }

    #[test]
    fn one_system_config_skips_the_choice_and_back_goes_back() {
        let mut a = app(&["Only"]);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Disk);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Encryption);
        a.key(Key::Esc);
        assert_eq!(a.screen, Screen::Disk);
        a.key(Key::Esc);
        assert_eq!(a.screen, Screen::Eula, "back from the first choice");
        // The EULA has no Back.
        assert_eq!(a.key(Key::Esc), Outcome::Continue);
        assert_eq!(a.screen, Screen::Eula);
    }

    #[test]
    fn declining_the_license_quits() {
        let mut a = app(&["Only"]);
        a.key(Key::Tab);
        assert_eq!(a.key(Key::Enter), Outcome::Quit(false));
        assert!(a.outcome[0].contains("declined"));
    }

    #[test]
    fn the_eula_scrolls_within_its_text() {
        let mut a = app(&["Only"]);
        for _ in 0..5 {
            a.key(Key::Down);
        }
        assert_eq!(a.eula_scroll, 2);
        a.key(Key::PageUp);
        assert_eq!(a.eula_scroll, 0);
    }

    #[test]
    fn encryption_passwords_must_match() {
        let mut a = app(&["Only"]);
        a.key(Key::Enter);
        a.key(Key::Enter);
        typed(&mut a, "luks-pw");
        a.key(Key::Enter);
        typed(&mut a, "luks-pX");
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Encryption);
        assert_eq!(a.error.as_deref(), Some("The passwords differ."));
        assert_eq!(a.focus, 1);
        a.key(Key::Backspace);
        typed(&mut a, "w");
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Hostname);
        assert_eq!(a.choices().unwrap().encryption.as_deref(), Some("luks-pw"));
        // Unsupported: the screen is skipped and nothing is encrypted.
        let mut b = app(&["Only"]);
        b.encryption_supported = false;
        b.key(Key::Enter);
        b.key(Key::Enter);
        assert_eq!(b.screen, Screen::Hostname);
    }

    #[test]
    fn bad_hostnames_and_users_are_refused_with_a_reason() {
        for bad in ["", "-a", "a-", "a..b", "under_score", &"x".repeat(65)] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "box-1", "host.example.com"] {
            assert!(check_hostname(good).is_ok(), "{good:?}");
        }
        for bad in ["", "root", "Ada", "1ada", "a b", "ada:x", &"a".repeat(33)] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        for good in ["ada", "_svc", "a-b_1"] {
            assert!(check_user_name(good).is_ok(), "{good:?}");
        }
        let mut a = app(&["Only"]);
        a.key(Key::Enter);
        a.key(Key::Enter);
        a.key(Key::Enter);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Hostname);
        typed(&mut a, "_");
        a.key(Key::Enter);
        assert!(a.error.as_deref().unwrap().contains("letters, digits"));
        a.key(Key::Backspace);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::User);
        typed(&mut a, "root");
        a.key(Key::Enter);
        a.key(Key::Enter);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::User);
        assert!(a.error.as_deref().unwrap().contains("root exists"));
        assert_eq!(a.focus, 0);
        for _ in 0..4 {
            a.key(Key::Backspace);
        }
        typed(&mut a, "ada");
        a.key(Key::Enter);
        a.key(Key::Enter);
        a.key(Key::Enter);
        assert_eq!(a.error.as_deref(), Some("The user needs a password."));
        assert_eq!(a.focus, 1);
    }

    #[test]
    fn no_disk_is_an_error_on_the_disk_screen() {
        let mut a = App::new("", vec!["Only".into()], vec![], "");
        a.key(Key::Enter);
        a.key(Key::Enter);
        assert_eq!(a.screen, Screen::Disk);
        assert!(a.error.as_deref().unwrap().contains("No disk"));
        assert_eq!(a.choices(), None);
    }

    #[test]
    fn install_lines_feed_the_progress_screen() {
        let mut a = app(&["Only"]);
        a.install_line("progress:250");
        assert_eq!(a.percent, 100);
        a.install_line("progress:x");
        assert_eq!(a.percent, 100);
        a.install_line("note: something");
        assert_eq!(a.action, "");
        assert_eq!(a.log, ["note: something"]);
        for i in 0..300 {
            a.install_line(&format!("action:{i}"));
        }
        assert_eq!(a.log.len(), LOG_LINES);
        assert_eq!(a.action, "299");
        a.finished(Err("the imager failed".into()));
        assert_eq!(a.screen, Screen::Failed);
        assert_eq!(a.key(Key::Enter), Outcome::Quit(false));
    }
}
