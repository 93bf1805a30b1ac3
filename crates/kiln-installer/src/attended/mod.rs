//! The attended installer (SPEC §5.3): upstream's terminal screens — EULA, installation choice,
//! disk (automatic layout), encryption, hostname, user, confirm, progress, finish — built on
//! the ISO's `attended_config.json`. The choices become `<build-dir>/attendedconfig.json`,
//! installed exactly as an unattended config is (the imager's `progress:N` / `action:text`
//! lines drive the progress screen).
//!
//! [`state`] is the screens as a state machine (key events in, choices out), [`view`] draws
//! them with ratatui (ASCII only: it runs on serial consoles), [`config`] makes the install
//! config, [`disks`] finds the disks; this module runs them on the terminal with crossterm.

pub mod config;
pub mod disks;
pub mod state;
pub mod view;

use crate::{Error, Installed, Installer};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use state::{App, Key, Outcome};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the ISO's initrd keeps the EULA (resources/imageconfigs/iso_initrd.json).
const EULA: &str = "/installer/EULA.txt";
/// Where runliveinstaller mounts the media (its disk is not offered as a target).
pub(crate) const MEDIA: &str = "/mnt/cdrom";
/// A terminal that does not know its size (a serial console) is taken to be the VT100's.
const FALLBACK_SIZE: (u16, u16) = (80, 24);

/// The attended install on this process's terminal.
pub fn run(installer: &Installer, line: &mut dyn FnMut(&str)) -> Result<Installed, Error> {
    let template_path = installer
        .template_config
        .clone()
        .unwrap_or_else(|| PathBuf::from("attended_config.json"));
    let bad = |message: String| Error::Config {
        path: template_path.clone(),
        message,
    };
    let text = std::fs::read(&template_path).map_err(|e| bad(e.to_string()))?;
    let template: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let (systems, hostname) = config::template_systems(&template).map_err(bad)?;
    let eula = std::fs::read_to_string(EULA).unwrap_or_else(|_| {
        "This installer writes the operating system onto the disk you choose.\n\
         Everything on that disk is erased."
            .to_string()
    });
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let media = disks::mounted_device(&mounts, MEDIA);
    let found = disks::list(Path::new("/sys/block"), media.as_deref());
    let mut app = App::new(&eula, systems, found, &hostname);

    let mut ui = Ui::open().map_err(|e| Error::Attended(format!("the terminal: {e}")))?;
    let mut result: Option<Result<Installed, Error>> = None;
    loop {
        ui.draw(&app)?;
        let key = match ui.key()? {
            Some(k) => k,
            None => continue,
        };
        match app.key(key) {
            Outcome::Continue => {}
            Outcome::Redraw => ui.clear()?,
            Outcome::Install(choices) => {
                ui.clear()?;
                let done = install(installer, &template, &choices, &mut app, &mut ui);
                ui.drain();
                app.finished(match &done {
                    Ok(i) => Ok(i.notes.clone()),
                    Err(e) => Err(e.to_string()),
                });
                result = Some(done);
                ui.clear()?;
            }
            Outcome::Quit(_) => break,
        }
    }
    ui.close();
    // The install's story, for the log (the screens are gone).
    for l in app.log.iter().chain(&app.outcome) {
        line(l);
    }
    result.unwrap_or_else(|| {
        Err(Error::Attended(
            app.outcome
                .first()
                .cloned()
                .unwrap_or_else(|| "the installer was left: nothing was installed".into()),
        ))
    })
}

/// Writes the config of the choices and installs it as an unattended config, the progress
/// screen following the imager's lines.
fn install(
    installer: &Installer,
    template: &serde_json::Value,
    choices: &state::Choices,
    app: &mut App,
    ui: &mut Ui,
) -> Result<Installed, Error> {
    let path = installer.build_dir.join("attendedconfig.json");
    let bad = |message: String| Error::Config {
        path: path.clone(),
        message,
    };
    let cfg = config::install_config(template, choices, config::Firmware::host()).map_err(bad)?;
    write_private(
        &path,
        &serde_json::to_vec_pretty(&cfg).expect("a JSON value"),
    )
    .map_err(|e| bad(format!("cannot write it: {e}")))?;
    let unattended = Installer {
        input: path.clone(),
        template_config: None,
        attended: false,
        // The disk is the one the user chose: no selector replaces it.
        target_disk: None,
        kernel_cmdline: None,
        ..installer.clone()
    };
    // The imager's stderr (its log) would scribble over the screens: it goes to a file.
    let stderr_log = installer.imager_log.with_extension("stderr.log");
    let saved = StderrTo::file(&stderr_log);
    let r = unattended.unattended(&mut |l| {
        app.install_line(l);
        // A screen that cannot be drawn does not stop the install.
        let _ = ui.draw(app);
    });
    drop(saved);
    r
}

/// The config holds passwords: only root reads it.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// fd 2 sent to a file until dropped (then restored).
struct StderrTo {
    saved: Option<libc::c_int>,
}

impl StderrTo {
    fn file(path: &Path) -> Self {
        let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        else {
            return StderrTo { saved: None };
        };
        use std::os::fd::AsRawFd;
        // SAFETY: dup/dup2 on valid descriptors; fd 2 is restored on drop.
        unsafe {
            let saved = libc::dup(2);
            if saved < 0 || libc::dup2(f.as_raw_fd(), 2) < 0 {
                return StderrTo { saved: None };
            }
            StderrTo { saved: Some(saved) }
        }
    }
}

impl Drop for StderrTo {
    fn drop(&mut self) {
        if let Some(fd) = self.saved {
            // SAFETY: `fd` is the duplicate made in `file`.
            unsafe {
                libc::dup2(fd, 2);
                libc::close(fd);
            }
        }
    }
}

/// The terminal: raw mode, a fixed 80x24 (or the terminal's size), restored on close or drop.
struct Ui {
    terminal: Terminal<CrosstermBackend<std::io::Stdout>>,
    open: bool,
}

impl Ui {
    fn open() -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        let (w, h) = terminal::size()
            .ok()
            .filter(|(w, h)| *w > 0 && *h > 0)
            .unwrap_or(FALLBACK_SIZE);
        let terminal = Terminal::with_options(
            CrosstermBackend::new(std::io::stdout()),
            TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, w, h)),
            },
        );
        let mut ui = Ui {
            terminal: match terminal {
                Ok(t) => t,
                Err(e) => {
                    let _ = terminal::disable_raw_mode();
                    return Err(e);
                }
            },
            open: true,
        };
        ui.terminal.clear()?;
        Ok(ui)
    }

    /// Draws the screen (ratatui shows the cursor only where a form field set it).
    fn draw(&mut self, app: &App) -> Result<(), Error> {
        self.terminal
            .draw(|f| view::draw(app, f))
            .map(|_| ())
            .map_err(|e| Error::Attended(format!("the terminal: {e}")))
    }

    /// A full redraw: whatever the console printed over the screen is gone.
    fn clear(&mut self) -> Result<(), Error> {
        self.terminal
            .clear()
            .map_err(|e| Error::Attended(format!("the terminal: {e}")))
    }

    /// The next key (`None` for events that are not keys).
    fn key(&mut self) -> Result<Option<Key>, Error> {
        let ev = event::read().map_err(|e| Error::Attended(format!("the terminal: {e}")))?;
        match ev {
            Event::Key(k) if k.kind != KeyEventKind::Release => Ok(map_key(k.code, k.modifiers)),
            Event::Resize(w, h) if w > 0 && h > 0 => {
                let _ = self.terminal.resize(Rect::new(0, 0, w, h));
                Ok(Some(Key::Redraw))
            }
            _ => Ok(None),
        }
    }

    /// Forgets the keys typed while installing (an Enter there must not reboot at once).
    fn drain(&mut self) {
        while event::poll(Duration::ZERO).unwrap_or(false) {
            if event::read().is_err() {
                break;
            }
        }
    }

    fn close(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        let _ = self.terminal.show_cursor();
        let bottom = self.terminal.get_frame().area().bottom();
        let _ = execute!(
            std::io::stdout(),
            cursor::MoveTo(0, bottom.saturating_sub(1))
        );
        let _ = terminal::disable_raw_mode();
        println!();
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        self.close();
    }
}

/// crossterm's key to the UI's. In raw mode a terminal sends CR for Enter; LF (Ctrl-J) is
/// taken as Enter too, and Ctrl-H as Backspace, as line disciplines do.
fn map_key(code: KeyCode, mods: KeyModifiers) -> Option<Key> {
    let ctrl = mods.contains(KeyModifiers::CONTROL);
    Some(match code {
        KeyCode::Char('l') if ctrl => Key::Redraw,
        KeyCode::Char('j') if ctrl => Key::Enter,
        KeyCode::Char('h') if ctrl => Key::Backspace,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Esc => Key::Esc,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_keys_map_as_a_serial_console_sends_them() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(map_key(KeyCode::Enter, none), Some(Key::Enter));
        assert_eq!(map_key(KeyCode::Char('j'), ctrl), Some(Key::Enter));
        assert_eq!(map_key(KeyCode::Char('h'), ctrl), Some(Key::Backspace));
        assert_eq!(map_key(KeyCode::Char('l'), ctrl), Some(Key::Redraw));
        assert_eq!(map_key(KeyCode::Char('c'), ctrl), None, "Ctrl-C is ignored");
        assert_eq!(map_key(KeyCode::Char('J'), none), Some(Key::Char('J')));
        assert_eq!(map_key(KeyCode::F(1), none), None);
    }

    #[test]
    fn the_config_is_written_for_root_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("attendedconfig.json");
        write_private(&p, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
