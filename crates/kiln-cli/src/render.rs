//! Rendering kiln-build's events: a live display on a terminal (a spinner per stage, bars for
//! downloads, installs and conversions), plain time-stamped lines otherwise (CI, logs), one JSON
//! object per line with `--json` (docs/json.md), or upstream's `--emit-progress` protocol
//! (`progress:N` and `action:text` lines) for the imager personality.

use crate::output::ColorChoice;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_build::{Error, Event, Stage};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners and bars on stderr (a terminal).
    Live,
    /// Time-stamped lines on stderr.
    Plain,
    /// One JSON object per event on stdout.
    Json,
    /// Upstream's `progress:N` / `action:text` lines on stdout, steps on stderr.
    EmitProgress,
}

/// `-q` / `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Errors and the final result only.
    Quiet,
    #[default]
    Normal,
    /// Program output on stderr too.
    Verbose,
}

/// What the command asked for, to pick the [`Mode`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub json: bool,
    pub verbosity: Verbosity,
    pub color: ColorChoice,
    /// Show program output (`  | ` lines) without `-v`: for commands without a build log.
    pub program_output: bool,
}

impl Options {
    pub fn new(json: bool, verbosity: Verbosity, color: ColorChoice) -> Options {
        Options {
            json,
            verbosity,
            color,
            program_output: false,
        }
    }
}

/// Renders events as they come.
pub struct Renderer {
    mode: Mode,
    opts: Options,
    started: Instant,
    live: Option<Live>,
    /// Steps told so far (the `--emit-progress` percentage).
    steps: usize,
}

struct Live {
    multi: MultiProgress,
    spinner: Option<ProgressBar>,
    /// The bar of downloads, installs or conversions, by kind.
    bar: Option<(&'static str, ProgressBar)>,
}

impl Renderer {
    pub fn new(opts: Options) -> Renderer {
        let mode = if opts.json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && opts.verbosity != Verbosity::Quiet {
            Mode::Live
        } else {
            Mode::Plain
        };
        Renderer::with_mode(mode, opts)
    }

    pub fn with_mode(mode: Mode, opts: Options) -> Renderer {
        let live = (mode == Mode::Live).then(|| Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            spinner: None,
            bar: None,
        });
        Renderer {
            mode,
            opts,
            started: Instant::now(),
            live,
            steps: 0,
        }
    }

    /// Shows program output (`  | ` lines) without `-v`: for commands without a build log.
    pub fn show_program_output(&mut self) {
        self.opts.program_output = true;
    }

    fn quiet(&self) -> bool {
        self.opts.verbosity == Verbosity::Quiet
    }

    fn stamp(&self, text: &str) -> String {
        text.lines()
            .map(|l| format!("[{:6.1} s] {l}", self.started.elapsed().as_secs_f64()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn warning_word(&self) -> &'static str {
        if self.opts.color.stderr() {
            "\x1b[1;33mwarning\x1b[0m"
        } else {
            "warning"
        }
    }

    /// A line above the live display, or on stderr.
    fn line(&self, text: &str) {
        match &self.live {
            Some(live) => {
                let _ = live.multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// Renders one event.
    pub fn event(&mut self, event: Event) {
        match self.mode {
            Mode::Json => println!("{}", event.to_json()),
            Mode::EmitProgress => self.emit_progress(&event),
            Mode::Plain => self.plain(&event),
            Mode::Live => self.live(&event),
        }
    }

    /// What the user must see even with `-q`: warnings are shown unless quiet.
    fn plain(&mut self, event: &Event) {
        let show_output = self.opts.program_output || self.opts.verbosity == Verbosity::Verbose;
        match event {
            _ if self.quiet() => {}
            Event::Output { .. } if !show_output => {}
            // Before the build's clock starts (waiting for a lock): as said, unstamped.
            Event::Step {
                stage: Stage::Setup,
                message,
            } => self.line(message),
            Event::Warning { .. } => {
                let text = event.plain().unwrap_or_default();
                let text = text.replacen("warning", self.warning_word(), 1);
                self.line(&self.stamp(&text));
            }
            _ => {
                if let Some(text) = event.plain() {
                    self.line(&self.stamp(&text));
                }
            }
        }
    }

    fn emit_progress(&mut self, event: &Event) {
        let action = match event {
            Event::Step { message, .. } => Some(message.clone()),
            Event::Install { .. } => event.plain(),
            Event::Warning { .. } => {
                let text = event.plain().unwrap_or_default();
                eprintln!("{text}");
                None
            }
            Event::Output { line, .. } if self.opts.verbosity == Verbosity::Verbose => {
                eprintln!("  | {line}");
                None
            }
            _ => None,
        };
        if let Some(what) = action {
            self.steps += 1;
            // The steps of a build are about twenty: progress climbs towards 100.
            println!("progress:{}", (self.steps * 5).min(99));
            println!("action:{what}");
            eprintln!("{what}");
        }
    }

    fn live(&mut self, event: &Event) {
        let verbose = self.opts.verbosity == Verbosity::Verbose;
        let stamped = event.plain().map(|t| self.stamp(&t));
        let warning = self.warning_word();
        let Some(live) = &mut self.live else { return };
        match event {
            Event::StageStarted { stage } => {
                live.finish_spinner();
                let spinner = live.multi.add(ProgressBar::new_spinner());
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:>9} [{elapsed}] {wide_msg}")
                        .expect("valid template"),
                );
                spinner.set_prefix(stage.name());
                spinner.enable_steady_tick(Duration::from_millis(120));
                live.spinner = Some(spinner);
            }
            Event::StageFinished { stage, elapsed } => {
                live.finish_spinner();
                live.finish_bar();
                let _ = live.multi.println(format!(
                    "✓ {:>9} {:.1} s",
                    stage.name(),
                    elapsed.as_secs_f64()
                ));
            }
            Event::Step { message, .. } => {
                if let Some(s) = &live.spinner {
                    s.set_message(message.clone());
                }
                if let Some(text) = stamped {
                    let _ = live.multi.println(text);
                }
            }
            Event::Warning { .. } => {
                if let Some(text) = stamped {
                    let _ = live.multi.println(text.replacen("warning", warning, 1));
                }
            }
            Event::Output { line, .. } => {
                if let Some(s) = &live.spinner {
                    s.set_message(format!("| {line}"));
                }
                if verbose || self.opts.program_output {
                    let _ = live.multi.println(format!("  | {line}"));
                }
            }
            Event::Download {
                done,
                count,
                bytes,
                total_bytes,
            } => {
                let bar = live.bar(
                    "download",
                    "{msg:<28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                );
                bar.set_length(*total_bytes);
                bar.set_position(*bytes);
                bar.set_message(format!("downloading {done}/{count} packages"));
                if done == count {
                    live.finish_bar();
                }
            }
            Event::Install {
                index,
                count,
                what,
                packages,
            } => {
                let bar = live.bar(
                    "install",
                    "{msg:<28} [{bar:30}] {pos}/{len} rpm transactions",
                );
                bar.set_length(*count as u64);
                bar.set_position(index.saturating_sub(1) as u64);
                bar.set_message(format!("installing {what} ({packages})"));
                if let Some(text) = stamped {
                    let _ = live.multi.println(text);
                }
            }
            Event::Convert {
                done,
                count,
                artifact,
                bytes,
                total_bytes,
            } => {
                if *total_bytes > 0 {
                    let bar = live.bar(
                        "convert-bytes",
                        "{msg:<28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    );
                    bar.set_length(*total_bytes);
                    bar.set_position(*bytes);
                    bar.set_message(format!("converting {artifact}"));
                } else {
                    let bar = live.bar("convert", "{msg:<28} [{bar:30}] {pos}/{len} artifacts");
                    bar.set_length(*count as u64);
                    bar.set_position(*done as u64);
                    bar.set_message(format!("artifacts ({artifact})"));
                    if done == count {
                        live.finish_bar();
                    }
                }
            }
            Event::Timings { .. } => {
                live.finish_spinner();
                live.finish_bar();
                if let Some(text) = stamped {
                    let _ = live.multi.println(text);
                }
            }
        }
    }

    /// Clears the live display (before the result is printed).
    pub fn finish(&mut self) {
        if let Some(live) = &mut self.live {
            live.finish_spinner();
            live.finish_bar();
        }
    }

    /// Renders a failure: an invalid config's report on stdout (as `kiln validate` prints it),
    /// then `error: <context><message>`, where it happened and what to do. With `--json`, the
    /// error as one object on stdout.
    pub fn error(&mut self, e: &Error, context: &str) {
        self.finish();
        if self.mode == Mode::Json {
            println!("{}", e.to_json());
            return;
        }
        if let Some(report) = &e.report {
            print!("{}", report.render(self.opts.color.stdout()));
        }
        let mut text = format!("error: {context}{}", e.message);
        if e.report.is_none() {
            if let Some(at) = &e.at {
                text += &format!("\n --> {at}");
            }
        }
        if let Some(p) = &e.package {
            text += &format!("\n  package: {p}");
        }
        if let Some(p) = &e.partition {
            text += &format!("\n  partition: {p}");
        }
        if let Some(o) = e.offset {
            text += &format!("\n  at byte offset {o}");
        }
        if let Some(help) = &e.help {
            text += &format!("\n  help: {help}");
        }
        if let Some(log) = &e.log {
            text += &format!("\n  log: {}", log.display());
        }
        eprintln!("{text}");
    }

    /// Ends a pipeline command: clears the display, then hands a success to `done` (which
    /// prints the result) or renders the failure. A setup failure (arguments, the config)
    /// exits 2 as a usage error does; a failed step exits 1, its message led by
    /// `context(stage)` ("building X failed at the compose step: ").
    pub fn conclude<T>(
        &mut self,
        result: Result<T, Error>,
        context: impl FnOnce(Stage) -> String,
        done: impl FnOnce(T),
    ) -> ExitCode {
        self.finish();
        match result {
            Ok(value) => {
                done(value);
                ExitCode::SUCCESS
            }
            Err(e) if e.stage == Stage::Setup => {
                self.error(&e, "");
                ExitCode::from(2)
            }
            Err(e) => {
                self.error(&e, &context(e.stage));
                ExitCode::FAILURE
            }
        }
    }

    /// A closure that renders events, for kiln-build's entry points.
    pub fn sink(&mut self) -> impl FnMut(Event) + '_ {
        move |e| self.event(e)
    }
}

impl Live {
    fn finish_spinner(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
    }

    fn finish_bar(&mut self) {
        if let Some((_, b)) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// The bar of `kind`, made with `template` when it is not the current one.
    fn bar(&mut self, kind: &'static str, template: &str) -> ProgressBar {
        if self.bar.as_ref().is_none_or(|(k, _)| *k != kind) {
            self.finish_bar();
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            self.bar = Some((kind, bar));
        }
        self.bar.as_ref().expect("just set").1.clone()
    }
}
