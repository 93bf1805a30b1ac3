//! Draws the attended installer's screens with ratatui. Only ASCII, reverse video and bold are
//! used — no colours, no line-drawing characters — so a serial console with TERM=vt100 shows
//! the same screens as a graphical terminal; everything fits 80x24.

use super::disks::human;
use super::state::{App, Field, Screen};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

/// ASCII borders: `+`, `-`, `|`.
const ASCII: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

const TITLE: &str = "Azure Linux installer (kiln)";

fn reversed() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// The screen's title, as shown in its frame.
pub fn title(screen: Screen) -> &'static str {
    match screen {
        Screen::Eula => "License agreement",
        Screen::Choice => "Installation choice",
        Screen::Disk => "Disk",
        Screen::Encryption => "Encryption",
        Screen::Hostname => "Hostname",
        Screen::User => "User",
        Screen::Confirm => "Confirm",
        Screen::Progress => "Installing",
        Screen::Finish => "Installation complete",
        Screen::Failed => "Installation failed",
    }
}

fn help(screen: Screen) -> &'static str {
    match screen {
        Screen::Eula => "Up/Down scroll   Tab switch   Enter choose",
        Screen::Choice | Screen::Disk => "Tab/Up/Down move   Enter choose   Esc back",
        Screen::Encryption | Screen::Hostname | Screen::User => {
            "Tab next field   Enter next/continue   Esc back   Ctrl-L redraw"
        }
        Screen::Confirm => "Tab switch   Enter choose   Esc back",
        Screen::Progress => "Please wait   Ctrl-L redraw",
        Screen::Finish => "Enter reboots",
        Screen::Failed => "Enter opens a shell",
    }
}

fn button(label: &str, focused: bool) -> Span<'static> {
    let text = format!("< {label} >");
    if focused {
        Span::styled(text, reversed())
    } else {
        Span::raw(text)
    }
}

fn buttons(labels: &[&str], focus: Option<usize>) -> Line<'static> {
    let mut spans = vec![Span::raw("  ")];
    for (i, l) in labels.iter().enumerate() {
        spans.push(button(l, focus == Some(i)));
        spans.push(Span::raw("   "));
    }
    Line::from(spans)
}

/// One form field: `Label: [value    ]`; the focused one in reverse video.
fn field_line(f: &Field, focused: bool, width: u16) -> Line<'static> {
    let shown: String = if f.secret {
        "*".repeat(f.value.chars().count())
    } else {
        f.value.clone()
    };
    let box_width = (width as usize).saturating_sub(24).clamp(8, 40);
    let tail: String = {
        let n = shown.chars().count();
        shown
            .chars()
            .skip(n.saturating_sub(box_width - 1))
            .collect()
    };
    let padded = format!("{tail:<box_width$}");
    Line::from(vec![
        Span::raw(format!("  {:<18}", format!("{}:", f.label))),
        Span::raw("["),
        Span::styled(
            padded,
            if focused {
                reversed()
            } else {
                Style::default()
            },
        ),
        Span::raw("]"),
    ])
}

/// Draws `app` on the whole frame.
pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(format!(" {TITLE} "), bold()))).centered(),
        top,
    );
    frame.render_widget(Paragraph::new(format!(" {}", help(app.screen))), bottom);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(ASCII)
        .title(format!(" {} ", title(app.screen)));
    let inner = block.inner(body);
    frame.render_widget(block, body);
    let mut lines: Vec<Line> = Vec::new();
    let mut cursor = None;
    match app.screen {
        Screen::Eula => {
            let rows = inner.height.saturating_sub(2) as usize;
            let text: Vec<Line> = app
                .eula
                .iter()
                .skip(app.eula_scroll)
                .take(rows)
                .map(|l| Line::from(l.clone()))
                .collect();
            let [t, b] = Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner);
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), t);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::raw(""),
                    buttons(&["Accept", "Decline"], Some(app.focus)),
                ]),
                b,
            );
            return;
        }
        Screen::Choice => {
            lines.push(Line::raw("Choose what to install:"));
            lines.push(Line::raw(""));
            for (i, name) in app.systems.iter().enumerate() {
                let l = format!("  ( ) {name}");
                lines.push(if i == app.focus {
                    Line::styled(l.replacen("( )", "(*)", 1), reversed())
                } else {
                    Line::raw(l)
                });
            }
        }
        Screen::Disk => {
            lines.push(Line::raw(
                "Choose the disk to install onto. EVERYTHING ON IT WILL BE ERASED.",
            ));
            lines.push(Line::raw(
                "It is partitioned automatically: GPT, an 8 MiB boot partition, the rest root.",
            ));
            lines.push(Line::raw(""));
            if app.disks.is_empty() {
                lines.push(Line::raw("  (no disk found)"));
            }
            for (i, d) in app.disks.iter().enumerate() {
                let l = format!("  ( ) {:<16} {:>10}  {}", d.path, human(d.size), d.model);
                lines.push(if i == app.focus {
                    Line::styled(l.replacen("( )", "(*)", 1), reversed())
                } else {
                    Line::raw(l)
                });
            }
        }
        Screen::Encryption | Screen::Hostname | Screen::User => {
            let (intro, fields): (&[&str], Vec<&Field>) = match app.screen {
                Screen::Encryption => (
                    &[
                        "Encrypt the root filesystem (LUKS)? Type its password twice,",
                        "or leave both empty for no encryption. It is asked at every boot.",
                    ],
                    app.encryption.iter().collect(),
                ),
                Screen::Hostname => (
                    &["The name of the installed system on the network."],
                    vec![&app.hostname],
                ),
                _ => (
                    &[
                        "The user to create (a member of wheel). root stays locked:",
                        "log in as this user.",
                    ],
                    app.user.iter().collect(),
                ),
            };
            lines.extend(intro.iter().map(|l| Line::raw(*l)));
            lines.push(Line::raw(""));
            let top = lines.len() as u16;
            for (i, f) in fields.iter().enumerate() {
                lines.push(field_line(f, i == app.focus, inner.width));
                if i == app.focus {
                    let shown = f.value.chars().count() as u16;
                    let box_width = inner.width.saturating_sub(24).clamp(8, 40);
                    cursor = Some(Position::new(
                        inner.x + 2 + 18 + 1 + shown.min(box_width - 1),
                        inner.y + top + i as u16,
                    ));
                }
            }
        }
        Screen::Confirm => {
            let c = app.choices();
            let disk = app.disks.get(app.disk);
            lines.push(Line::raw("Ready to install:"));
            lines.push(Line::raw(""));
            let row = |k: &str, v: String| Line::raw(format!("  {k:<14}{v}"));
            lines.push(row(
                "System:",
                app.systems.get(app.system).cloned().unwrap_or_default(),
            ));
            lines.push(row(
                "Disk:",
                disk.map(|d| format!("{} ({}), erased", d.path, human(d.size)))
                    .unwrap_or_default(),
            ));
            lines.push(row(
                "Encryption:",
                if c.as_ref().is_some_and(|c| c.encryption.is_some()) {
                    "LUKS on the root".into()
                } else {
                    "none".into()
                },
            ));
            lines.push(row("Hostname:", app.hostname.value.clone()));
            lines.push(row("User:", format!("{} (wheel)", app.user[0].value)));
            lines.push(Line::raw(""));
            lines.push(buttons(&["Install", "Back"], Some(app.focus)));
        }
        Screen::Progress => {
            let width = inner.width.saturating_sub(12).max(10) as usize;
            let done = width * app.percent as usize / 100;
            lines.push(Line::raw(""));
            lines.push(Line::raw(format!(
                "  [{}{}] {:>3}%",
                "#".repeat(done),
                ".".repeat(width - done),
                app.percent
            )));
            lines.push(Line::raw(""));
            lines.push(Line::styled(format!("  {}", app.action), bold()));
            lines.push(Line::raw(""));
            let rows = inner.height.saturating_sub(lines.len() as u16) as usize;
            let start = app.log.len().saturating_sub(rows);
            lines.extend(app.log[start..].iter().map(|l| Line::raw(format!("  {l}"))));
        }
        Screen::Finish | Screen::Failed => {
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                if app.screen == Screen::Finish {
                    "  The system is installed."
                } else {
                    "  The installation failed:"
                },
                bold(),
            ));
            lines.push(Line::raw(""));
            lines.extend(app.outcome.iter().map(|l| Line::raw(format!("  {l}"))));
            lines.push(Line::raw(""));
            lines.push(Line::raw(if app.screen == Screen::Finish {
                "  Press Enter to reboot."
            } else {
                "  Press Enter for a shell."
            }));
        }
    }
    if let Some(e) = &app.error {
        lines.push(Line::raw(""));
        lines.push(Line::styled(format!("  ! {e}"), bold()));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    if let Some(p) = cursor {
        frame.set_cursor_position(clamp(p, inner));
    }
}

fn clamp(p: Position, r: Rect) -> Position {
    Position::new(
        p.x.min(r.right().saturating_sub(1)),
        p.y.min(r.bottom().saturating_sub(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attended::disks::BlockDevice;
    use crate::attended::state::Key;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen_text(app: &App) -> String {
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| draw(app, f)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    #[test]
    fn every_screen_fits_80x24_in_ascii() {
        let mut a = App::new(
            &"A long license line that goes on. ".repeat(10),
            vec!["Full".into(), "Core".into()],
            vec![BlockDevice {
                path: "/dev/vda".into(),
                size: 4 << 30,
                model: "QEMU HARDDISK".into(),
                ..Default::default()
            }],
            "azurelinux",
        );
        let mut seen = Vec::new();
        let keys = [
            Key::Enter,
            Key::Enter,
            Key::Enter,
            Key::Char('p'),
            Key::Enter,
            Key::Char('p'),
            Key::Enter,
            Key::Enter,
            Key::Char('a'),
            Key::Enter,
            Key::Char('x'),
            Key::Enter,
            Key::Char('x'),
            Key::Enter,
        ];
        for k in keys {
            let s = screen_text(&a);
            assert!(s.is_ascii(), "{s}");
            assert_eq!(s.lines().count(), 24);
            assert!(s.contains(title(a.screen)), "{s}");
            seen.push(a.screen);
            a.key(k);
        }
        let confirm = screen_text(&a);
        assert_eq!(a.screen, Screen::Confirm);
        for want in [
            "System:       Full",
            "/dev/vda (4.0 GiB), erased",
            "LUKS on the root",
            "User:         a (wheel)",
            "< Install >",
        ] {
            assert!(confirm.contains(want), "{want}:\n{confirm}");
        }
        assert!(!confirm.contains("pp"), "passwords are never shown");
        a.key(Key::Enter);
        a.install_line("progress:50");
        a.install_line("action:Installing packages");
        let p = screen_text(&a);
        assert!(p.contains("50%") && p.contains("Installing packages") && p.contains("####"));
        a.finished(Ok(vec!["the installation media was ejected".into()]));
        let f = screen_text(&a);
        assert!(
            f.contains("The system is installed.") && f.contains("ejected"),
            "{f}"
        );
        for s in [
            Screen::Eula,
            Screen::Choice,
            Screen::Disk,
            Screen::Encryption,
            Screen::Hostname,
            Screen::User,
        ] {
            assert!(seen.contains(&s), "{s:?} never shown");
        }
    }

    #[test]
    fn secrets_show_as_stars() {
        let mut a = App::new("", vec!["Only".into()], vec![], "");
        a.screen = Screen::User;
        a.focus = 1;
        for c in "hunter2".chars() {
            a.key(Key::Char(c));
        }
        let s = screen_text(&a);
        assert!(s.contains("[*******"), "{s}");
        assert!(!s.contains("hunter2"));
    }
}
