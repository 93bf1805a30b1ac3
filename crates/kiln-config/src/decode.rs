//! Decoding a parsed document into the typed [`Config`], the way upstream's Go decoder does.
//!
//! Upstream decodes with `encoding/json` into structs whose custom decoders validate each object
//! as soon as it is decoded and wrap errors in `failed to parse [Type]: ` prefixes; it stops at the
//! first error. kiln decodes the same way but keeps going: every type error and every rule
//! violation becomes a [`Diagnostic`] with its span and JSON path, and each also carries the exact
//! text upstream would have printed (its chain of prefixes) and where upstream would have stopped
//! (see [`UpstreamOrder`]), so kiln can both report everything and quote upstream faithfully.

use crate::diag::{Diagnostic, Report, Severity, UpstreamOrder};
use crate::json::{Node, Span, Value};
use crate::model::*;
use crate::rules;
use crate::schema::{self, Field, TypeInfo};
use indexmap::IndexMap;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
    MapKey(String),
}

/// Renders a path such as `SystemConfigs[0].AdditionalFiles["a.txt"]`.
pub fn path_string(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
            Seg::MapKey(k) => {
                let ident = k
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if ident {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                } else {
                    s.push('[');
                    s.push_str(&serde_json::to_string(k).unwrap_or_default());
                    s.push(']');
                }
            }
        }
    }
    s
}

/// How a Go type looks in JSON, for help texts.
fn describe_go_type(go_type: &str) -> &'static str {
    match go_type {
        "uint64" => "a whole number (no sign, fraction or exponent)",
        "int64" => "a whole number (no fraction or exponent)",
        "bool" => "true or false",
        "string" => "a string",
        t if t.starts_with("[]") => "an array",
        t if t.starts_with("map[") => "an object",
        "configuration.IntermediateTypePartitionFlag"
        | "configuration.IntermediateTypePartitionTableType"
        | "configuration.IntermediateTypeMountIdentifier"
        | "configuration.IntermediateTypeImaPolicy"
        | "configuration.IntermediateTypeSELinux"
        | "configuration.IntermediateTypeCGroup" => "a string",
        _ => "an object",
    }
}

/// One call of a custom Go decoder (`UnmarshalJSON` of a type with its own prefix).
struct Frame {
    wrapper: &'static str,
    /// Where upstream's decoder for this object returns.
    end: usize,
    /// Length of the Go field stack when this decoder started (Go error context is per call).
    field_base: usize,
}

/// Decoding state: where we are, and what was found.
pub(crate) struct Decoder<'r> {
    pub report: &'r mut Report,
    /// Index of the source file being decoded.
    pub source: usize,
    pub phase: u8,
    path: Vec<Seg>,
    frames: Vec<Frame>,
    go_structs: Vec<&'static str>,
    go_fields: Vec<&'static str>,
    seq: usize,
    type_errors: usize,
    /// Paths of values that had the wrong JSON type: rules about them would only repeat the
    /// problem with a misleading message, so they are not reported.
    tainted: Vec<String>,
}

impl<'r> Decoder<'r> {
    pub fn new(report: &'r mut Report, source: usize) -> Self {
        Decoder {
            report,
            source,
            phase: 1,
            path: Vec::new(),
            frames: Vec::new(),
            go_structs: Vec::new(),
            go_fields: Vec::new(),
            seq: 0,
            type_errors: 0,
            tainted: Vec::new(),
        }
    }

    /// Whether any value had the wrong JSON type (the model is then incomplete).
    pub fn had_type_errors(&self) -> bool {
        self.type_errors > 0
    }

    // ---- emitting diagnostics -------------------------------------------------------------

    fn push(
        &mut self,
        severity: Severity,
        span: Span,
        path: String,
        message: String,
        upstream: Option<String>,
    ) {
        self.emit(severity, self.source, span, path, message, upstream);
    }

    /// Records a diagnostic in any source file (package lists have their own).
    pub fn emit(
        &mut self,
        severity: Severity,
        source: usize,
        span: Span,
        path: String,
        message: String,
        upstream: Option<String>,
    ) {
        self.seq += 1;
        let order = UpstreamOrder {
            phase: self.phase,
            offset: self.frames.last().map_or(usize::MAX, |f| f.end),
            seq: self.seq,
        };
        self.report.diagnostics.push(Diagnostic {
            severity,
            message,
            path,
            source,
            span,
            upstream,
            help: None,
            order,
        });
    }

    /// An error upstream reports too: its text gets the chain of the enclosing decoders' prefixes.
    pub fn error_at(&mut self, span: Span, path: String, message: String) {
        let chain: String = self.frames.iter().map(|f| f.wrapper).collect();
        let upstream = Some(format!("{chain}{message}"));
        self.push(Severity::Error, span, path, message, upstream);
    }

    /// An error whose upstream text is given whole (outside any decoder).
    pub fn error_with_upstream(
        &mut self,
        span: Span,
        path: String,
        message: String,
        upstream: String,
    ) {
        self.push(Severity::Error, span, path, message, Some(upstream));
    }

    /// An error only kiln reports (upstream accepts the value, or fails later at build time):
    /// it makes the config invalid, but carries no upstream text.
    pub fn kiln_error_at(&mut self, span: Span, path: String, message: String) {
        self.push(Severity::Error, span, path, message, None);
    }

    /// [`Decoder::kiln_error_at`] at a value below `node` (see [`Decoder::locate`]); left out
    /// when the value had a type error.
    pub fn kiln_error(&mut self, node: &Node, rel: &[Seg], message: String) {
        let (span, path) = self.locate(node, rel);
        if !self.is_tainted(&path) {
            self.kiln_error_at(span, path, message);
        }
    }

    pub fn warning_at(&mut self, span: Span, path: String, message: String) {
        self.push(Severity::Warning, span, path, message, None);
    }

    /// The span and path of a value below `node` (`rel` relative to the current path); when the
    /// value is absent, the deepest node that exists.
    pub fn locate(&self, node: &Node, rel: &[Seg]) -> (Span, String) {
        let mut cur = node;
        let mut span = node.span;
        for seg in rel {
            let next = match seg {
                Seg::Key(k) => cur.member_entry(k).map(|m| &m.value),
                Seg::Index(i) => cur.element(*i),
                Seg::MapKey(k) => cur.member_entry(k).map(|m| &m.value),
            };
            match next {
                Some(n) => {
                    cur = n;
                    span = n.span;
                }
                None => {
                    // Point at the opening of the object that lacks the key.
                    span = Span::new(cur.span.start, cur.span.start + 1);
                    break;
                }
            }
        }
        let mut path = self.path.clone();
        path.extend(rel.iter().cloned());
        (span, path_string(&path))
    }

    /// Error at a value below `node` (see [`Decoder::locate`]).
    /// Rule errors about a value (or a part of it) that had a type error are not reported.
    pub fn error(&mut self, node: &Node, rel: &[Seg], message: String) {
        let (span, path) = self.locate(node, rel);
        if !self.is_tainted(&path) {
            self.error_at(span, path, message);
        }
    }

    /// Whether a type error happened at `path`, inside it, or in a value containing it.
    pub fn is_tainted(&self, path: &str) -> bool {
        let within = |outer: &str, inner: &str| {
            inner.strip_prefix(outer).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        };
        self.tainted
            .iter()
            .any(|t| within(t, path) || within(path, t))
    }

    /// [`Decoder::is_tainted`] for a path relative to the current one.
    pub fn is_tainted_below(&self, rel: &[Seg]) -> bool {
        let mut path = self.path.clone();
        path.extend(rel.iter().cloned());
        self.is_tainted(&path_string(&path))
    }

    pub fn warning(&mut self, node: &Node, rel: &[Seg], message: String) {
        let (span, path) = self.locate(node, rel);
        self.warning_at(span, path, message);
    }

    /// Go's `UnmarshalTypeError`, in the context of the innermost decoder call.
    fn type_error(&mut self, node: &Node, what: String, go_type: &str) {
        self.type_errors += 1;
        self.tainted.push(path_string(&self.path));
        let base = self.frames.last().map_or(0, |f| f.field_base);
        let message = if self.go_fields.len() > base {
            format!(
                "json: cannot unmarshal {what} into Go struct field {}.{} of type {go_type}",
                self.go_structs.last().copied().unwrap_or(""),
                self.go_fields[base..].join(".")
            )
        } else {
            format!("json: cannot unmarshal {what} into Go value of type {go_type}")
        };
        let path = path_string(&self.path);
        self.error_at(node.span, path, message);
        let secret = matches!(self.path.last(), Some(Seg::Key(k)) if crate::diag::is_secret_key(k));
        let found = match &node.value {
            // A password's value is never echoed.
            Value::Number(_) | Value::String(_) if secret => {
                format!("a {} (not shown)", node.value.kind_name())
            }
            Value::Number(n) => format!("the number {n}"),
            Value::String(s) => format!(
                "the string {}",
                serde_json::to_string(s).unwrap_or_default()
            ),
            v => format!(
                "{} {}",
                if matches!(v, Value::Array(_) | Value::Object(_)) {
                    "an"
                } else {
                    "a"
                },
                v.kind_name()
            ),
        };
        if let Some(last) = self.report.diagnostics.last_mut() {
            last.help = Some(format!(
                "expected {}, found {found}",
                describe_go_type(go_type)
            ));
        }
    }

    fn wrong_kind(&mut self, node: &Node, go_type: &str) {
        self.type_error(node, node.value.kind_name().to_string(), go_type);
    }

    // ---- structure ------------------------------------------------------------------------

    /// Runs a custom decoder: `body` decodes, then `validate` checks the object. (Upstream returns
    /// a type error instead of validating; kiln validates what it could decode, and leaves out
    /// rule errors about values that had type errors.)
    pub fn frame<T>(
        &mut self,
        node: &Node,
        wrapper: &'static str,
        out: &mut T,
        body: impl FnOnce(&mut Self, &Node, &mut T),
        validate: impl FnOnce(&mut Self, &Node, &T),
    ) {
        self.frames.push(Frame {
            wrapper,
            end: node.span.end,
            field_base: self.go_fields.len(),
        });
        body(self, node, out);
        validate(self, node, out);
        self.frames.pop();
    }

    /// Decodes an object's members into fields of `info`; unknown keys become warnings.
    pub fn object(
        &mut self,
        node: &Node,
        info: &'static TypeInfo,
        go_type: &str,
        mut field: impl FnMut(&mut Self, &'static Field, &Node),
    ) {
        let members = match &node.value {
            Value::Null => return,
            Value::Object(members) => members,
            _ => return self.wrong_kind(node, go_type),
        };
        self.go_structs.push(info.go_struct);
        for m in members {
            match info.field(&m.key) {
                Some(f) => {
                    self.path.push(Seg::Key(f.name));
                    self.go_fields.push(f.name);
                    field(self, f, &m.value);
                    self.go_fields.pop();
                    self.path.pop();
                }
                None => self.unknown_key(info, &m.key, m.key_span),
            }
        }
        self.go_structs.pop();
    }

    fn unknown_key(&mut self, info: &'static TypeInfo, key: &str, span: Span) {
        let mut path = self.path.clone();
        path.push(Seg::MapKey(key.to_string()));
        let path = path_string(&path);
        if let Some((_, why)) = info
            .removed
            .iter()
            .find(|(k, _)| crate::json::keys_match(key, k))
        {
            return self.warning_at(span, path, (*why).to_string());
        }
        // Keys starting with `_` are the conventional comments (`"_comment"`).
        if key.starts_with('_') {
            return;
        }
        let message = match info.suggest(key) {
            Some(s) => format!(
                "unknown key \"{key}\" in [{}] is ignored; did you mean \"{s}\"?",
                info.name
            ),
            None => format!("unknown key \"{key}\" in [{}] is ignored", info.name),
        };
        self.warning_at(span, path, message);
    }

    /// A custom-decoded object type: frame + object + validation.
    pub fn typed_object<T>(
        &mut self,
        node: &Node,
        info: &'static TypeInfo,
        out: &mut T,
        mut field: impl FnMut(&mut Self, &'static Field, &Node, &mut T),
        validate: impl FnOnce(&mut Self, &Node, &T),
    ) {
        let wrapper = info.wrapper.expect("custom-decoded types have a wrapper");
        let go_type = format!("configuration.{}", info.go_struct);
        self.frame(
            node,
            wrapper,
            out,
            |d, node, out| d.object(node, info, &go_type, |d, f, v| field(d, f, v, out)),
            validate,
        );
    }

    /// An array into a `Vec`, element by element (Go reuses existing elements; so do we).
    pub fn list<T: Default>(
        &mut self,
        node: &Node,
        go_type: &str,
        out: &mut Vec<T>,
        mut elem: impl FnMut(&mut Self, &Node, &mut T),
    ) {
        match &node.value {
            Value::Null => out.clear(),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i >= out.len() {
                        out.push(T::default());
                    }
                    self.path.push(Seg::Index(i));
                    elem(self, item, &mut out[i]);
                    self.path.pop();
                }
                out.truncate(items.len());
            }
            _ => self.wrong_kind(node, go_type),
        }
    }

    // ---- scalars --------------------------------------------------------------------------

    pub fn string(&mut self, node: &Node, out: &mut String) {
        match &node.value {
            Value::Null => {}
            Value::String(s) => *out = s.clone(),
            _ => self.wrong_kind(node, "string"),
        }
    }

    pub fn bool(&mut self, node: &Node, out: &mut bool) {
        match &node.value {
            Value::Null => {}
            Value::Bool(b) => *out = *b,
            _ => self.wrong_kind(node, "bool"),
        }
    }

    pub fn u64(&mut self, node: &Node, out: &mut u64) {
        match &node.value {
            Value::Null => {}
            Value::Number(n) => match n.parse::<u64>() {
                Ok(v) if n.bytes().all(|b| b.is_ascii_digit()) => *out = v,
                _ => self.type_error(node, format!("number {n}"), "uint64"),
            },
            _ => self.wrong_kind(node, "uint64"),
        }
    }

    pub fn i64(&mut self, node: &Node, out: &mut i64) {
        match &node.value {
            Value::Null => {}
            Value::Number(n) => match n.parse::<i64>() {
                Ok(v) if !n.starts_with('+') && !n.contains(['.', 'e', 'E']) => *out = v,
                _ => self.type_error(node, format!("number {n}"), "int64"),
            },
            _ => self.wrong_kind(node, "int64"),
        }
    }

    pub fn string_list(&mut self, node: &Node, go_type: &str, out: &mut Vec<String>) {
        self.list(node, go_type, out, |d, n, s| d.string(n, s));
    }

    pub fn string_map(&mut self, node: &Node, go_type: &str, out: &mut IndexMap<String, String>) {
        match &node.value {
            Value::Null => out.clear(),
            Value::Object(members) => {
                for m in members {
                    let mut v = String::new();
                    self.path.push(Seg::MapKey(m.key.clone()));
                    self.string(&m.value, &mut v);
                    self.path.pop();
                    out.insert(m.key.clone(), v);
                }
            }
            _ => self.wrong_kind(node, go_type),
        }
    }

    /// A string enum with its own decoder: the value, or `invalid value for <label> (<value>)`.
    /// `Option<E>` slots (list elements) stay `None` when the value is invalid.
    pub fn enumeration<E: UpstreamEnum, O: EnumSlot<E>>(&mut self, node: &Node, out: &mut O) {
        self.frame(
            node,
            E::WRAPPER,
            out,
            |d, node, out| match &node.value {
                Value::Null => {}
                Value::String(s) => match E::parse(s) {
                    Some(v) => out.set(v),
                    None => {
                        let path = path_string(&d.path);
                        let message = format!("invalid value for {} ({s})", E::LABEL);
                        d.error_at(node.span, path, message);
                    }
                },
                _ => d.wrong_kind(
                    node,
                    &format!("configuration.IntermediateType{}", E::GO_NAME),
                ),
            },
            |_, _, _| {},
        );
    }
}

/// Upstream's string enum types: how their decoder names them in errors.
pub(crate) trait UpstreamEnum: Copy {
    /// `IntermediateType<GO_NAME>` in type errors.
    const GO_NAME: &'static str;
    const WRAPPER: &'static str;
    /// The name in `invalid value for <LABEL> (…)`.
    const LABEL: &'static str;
    fn parse(s: &str) -> Option<Self>;
}

macro_rules! upstream_enums {
    ($($ty:ty: $go:literal, $wrapper:literal, $label:literal;)+) => {$(
        impl UpstreamEnum for $ty {
            const GO_NAME: &'static str = $go;
            const WRAPPER: &'static str = $wrapper;
            const LABEL: &'static str = $label;
            fn parse(s: &str) -> Option<Self> {
                <$ty>::parse(s)
            }
        }
    )+};
}

upstream_enums! {
    PartitionTableType: "PartitionTableType", "failed to parse [PartitionTableType]: ", "PartitionTableType";
    PartitionFlag: "PartitionFlag", "failed to parse [Flag]: ", "Flag";
    MountIdentifier: "MountIdentifier", "failed to parse [MountIdentifier]: ", "Mount Identifier";
    ImaPolicy: "ImaPolicy", "failed to parse [ImaPolicy]: ", "ImaPolicy";
    SELinux: "SELinux", "failed to parse [SELinux]: ", "SELinux";
    CGroup: "CGroup", "failed to parse [CGroup]: ", "CGroup";
}

/// Where a decoded enum value goes: a field, or a list slot that stays `None` when invalid.
pub(crate) trait EnumSlot<E> {
    fn set(&mut self, value: E);
}

impl<E: UpstreamEnum> EnumSlot<E> for E {
    fn set(&mut self, value: E) {
        *self = value;
    }
}

impl<E: UpstreamEnum> EnumSlot<E> for Option<E> {
    fn set(&mut self, value: E) {
        *self = Some(value);
    }
}

/// Decodes one enum value (a field).
pub(crate) fn enum_value<E: UpstreamEnum>(d: &mut Decoder, node: &Node, out: &mut E) {
    d.enumeration::<E, E>(node, out);
}

/// Decodes one enum list element.
pub(crate) fn enum_element<E: UpstreamEnum>(d: &mut Decoder, node: &Node, out: &mut Option<E>) {
    d.enumeration::<E, Option<E>>(node, out);
}

// ---- the config types ---------------------------------------------------------------------

pub(crate) fn config(d: &mut Decoder, node: &Node, out: &mut Config) {
    d.typed_object(
        node,
        &schema::CONFIG,
        out,
        |d, f, v, c| match f.name {
            "Disks" => d.list(v, f.go_type, &mut c.disks, disk),
            "SystemConfigs" => d.list(v, f.go_type, &mut c.system_configs, system_config),
            // Decoded and validated like a SystemConfig, then replaced by the loader.
            "DefaultSystemConfig" => system_config(d, v, &mut SystemConfig::default()),
            _ => unreachable!("{}", f.name),
        },
        rules::config,
    );
}

pub(crate) fn disk(d: &mut Decoder, node: &Node, out: &mut Disk) {
    d.typed_object(
        node,
        &schema::DISK,
        out,
        |d, f, v, disk| match f.name {
            "PartitionTableType" => enum_value(d, v, &mut disk.partition_table_type),
            "MaxSize" => d.u64(v, &mut disk.max_size),
            "TargetDisk" => d.object(v, &schema::TARGET_DISK, f.go_type, |d, f, v| match f.name {
                "Type" => d.string(v, &mut disk.target_disk.ty),
                "Value" => d.string(v, &mut disk.target_disk.value),
                _ => unreachable!("{}", f.name),
            }),
            "Artifacts" => match &v.value {
                Value::Null => disk.artifacts = None,
                _ => {
                    let list = disk.artifacts.get_or_insert_with(Vec::new);
                    d.list(v, f.go_type, list, artifact);
                }
            },
            "Partitions" => d.list(v, f.go_type, &mut disk.partitions, partition),
            "RawBinaries" => d.list(v, f.go_type, &mut disk.raw_binaries, |d, v, b| {
                d.object(
                    v,
                    &schema::RAW_BINARY,
                    "configuration.RawBinary",
                    |d, f, v| match f.name {
                        "BinPath" => d.string(v, &mut b.bin_path),
                        "BlockSize" => d.u64(v, &mut b.block_size),
                        "Seek" => d.u64(v, &mut b.seek),
                        _ => unreachable!("{}", f.name),
                    },
                )
            }),
            _ => unreachable!("{}", f.name),
        },
        rules::disk,
    );
}

fn artifact(d: &mut Decoder, node: &Node, a: &mut Artifact) {
    d.object(
        node,
        &schema::ARTIFACT,
        "configuration.Artifact",
        |d, f, v| match f.name {
            "Name" => d.string(v, &mut a.name),
            "Type" => d.string(v, &mut a.ty),
            "Compression" => d.string(v, &mut a.compression),
            _ => unreachable!("{}", f.name),
        },
    );
}

/// Decodes a list of enum values whose element decoder may leave a slot unset (`None`) when the
/// value is invalid; only valid values are kept.
fn enum_list<E: UpstreamEnum>(d: &mut Decoder, node: &Node, go_type: &str, out: &mut Vec<E>) {
    let mut slots: Vec<Option<E>> = out.iter().copied().map(Some).collect();
    d.list(node, go_type, &mut slots, enum_element);
    *out = slots.into_iter().flatten().collect();
}

pub(crate) fn partition(d: &mut Decoder, node: &Node, out: &mut Partition) {
    d.typed_object(
        node,
        &schema::PARTITION,
        out,
        |d, f, v, p| match f.name {
            "ID" => d.string(v, &mut p.id),
            "Name" => d.string(v, &mut p.name),
            "Start" => d.u64(v, &mut p.start),
            "End" => d.u64(v, &mut p.end),
            "FsType" => d.string(v, &mut p.fs_type),
            "Type" => d.string(v, &mut p.ty),
            "TypeUUID" => d.string(v, &mut p.type_uuid),
            "Flags" => enum_list(d, v, f.go_type, &mut p.flags),
            "Artifacts" => d.list(v, f.go_type, &mut p.artifacts, artifact),
            _ => unreachable!("{}", f.name),
        },
        rules::partition,
    );
}

pub(crate) fn system_config(d: &mut Decoder, node: &Node, out: &mut SystemConfig) {
    d.typed_object(
        node,
        &schema::SYSTEM_CONFIG,
        out,
        |d, f, v, s| match f.name {
            "IsDefault" => d.bool(v, &mut s.is_default),
            "IsKickStartBoot" => d.bool(v, &mut s.is_kick_start_boot),
            "IsIsoInstall" => d.bool(v, &mut s.is_iso_install),
            "BootType" => {
                // A plain string upstream; checked by the SystemConfig rules.
                let mut raw = s.boot_type.as_str().to_string();
                d.string(v, &mut raw);
                s.boot_type = BootType::parse(&raw).unwrap_or(s.boot_type);
            }
            "EnableGrubMkconfig" => d.bool(v, &mut s.enable_grub_mkconfig),
            "EnableSystemdFirstboot" => d.bool(v, &mut s.enable_systemd_firstboot),
            "Hostname" => d.string(v, &mut s.hostname),
            "Name" => d.string(v, &mut s.name),
            "PackageLists" => d.string_list(v, f.go_type, &mut s.package_lists),
            "Packages" => d.string_list(v, f.go_type, &mut s.packages),
            "KernelOptions" => d.string_map(v, f.go_type, &mut s.kernel_options),
            "KernelCommandLine" => kernel_command_line(d, v, &mut s.kernel_command_line),
            "AdditionalFiles" => additional_files(d, v, f.go_type, &mut s.additional_files),
            "PartitionSettings" => {
                d.list(v, f.go_type, &mut s.partition_settings, partition_setting)
            }
            "PreInstallScripts" => d.list(v, f.go_type, &mut s.pre_install_scripts, install_script),
            "PostInstallScripts" => {
                d.list(v, f.go_type, &mut s.post_install_scripts, install_script)
            }
            "FinalizeImageScripts" => {
                d.list(v, f.go_type, &mut s.finalize_image_scripts, install_script)
            }
            "Networks" => d.list(v, f.go_type, &mut s.networks, network),
            "PackageRepos" => d.list(v, f.go_type, &mut s.package_repos, package_repo),
            "Groups" => d.list(v, f.go_type, &mut s.groups, |d, v, g| {
                d.object(
                    v,
                    &schema::GROUP,
                    "configuration.Group",
                    |d, f, v| match f.name {
                        "Name" => d.string(v, &mut g.name),
                        "GID" => d.string(v, &mut g.gid),
                        _ => unreachable!("{}", f.name),
                    },
                );
                crate::safety::group(d, v, g);
            }),
            "Users" => d.list(v, f.go_type, &mut s.users, user),
            "Encryption" => d.object(v, &schema::ENCRYPTION, f.go_type, |d, f, v| match f.name {
                "Enable" => d.bool(v, &mut s.encryption.enable),
                "Password" => d.string(v, &mut s.encryption.password),
                _ => unreachable!("{}", f.name),
            }),
            "RemoveRpmDb" => d.bool(v, &mut s.remove_rpm_db),
            "PreserveTdnfCache" => d.bool(v, &mut s.preserve_tdnf_cache),
            "EnableHidepid" => d.bool(v, &mut s.enable_hidepid),
            "DisableRpmDocs" => d.bool(v, &mut s.disable_rpm_docs),
            "OverrideRpmLocales" => d.string(v, &mut s.override_rpm_locales),
            _ => unreachable!("{}", f.name),
        },
        rules::system_config,
    );
}

fn install_script(d: &mut Decoder, node: &Node, s: &mut InstallScript) {
    d.object(
        node,
        &schema::INSTALL_SCRIPT,
        "configuration.InstallScript",
        |d, f, v| match f.name {
            "Path" => d.string(v, &mut s.path),
            "Args" => d.string(v, &mut s.args),
            _ => unreachable!("{}", f.name),
        },
    );
}

pub(crate) fn kernel_command_line(d: &mut Decoder, node: &Node, out: &mut KernelCommandLine) {
    d.typed_object(
        node,
        &schema::KERNEL_COMMAND_LINE,
        out,
        |d, f, v, k| match f.name {
            "ImaPolicy" => enum_list(d, v, f.go_type, &mut k.ima_policy),
            "SELinux" => enum_value(d, v, &mut k.selinux),
            "SELinuxPolicy" => d.string(v, &mut k.selinux_policy),
            "EnableFIPS" => d.bool(v, &mut k.enable_fips),
            "CGroup" => enum_value(d, v, &mut k.cgroup),
            "ExtraCommandLine" => d.string(v, &mut k.extra_command_line),
            _ => unreachable!("{}", f.name),
        },
        rules::kernel_command_line,
    );
}

pub(crate) fn partition_setting(d: &mut Decoder, node: &Node, out: &mut PartitionSetting) {
    d.typed_object(
        node,
        &schema::PARTITION_SETTING,
        out,
        |d, f, v, p| match f.name {
            "ID" => d.string(v, &mut p.id),
            "MountPoint" => d.string(v, &mut p.mount_point),
            "MountOptions" => d.string(v, &mut p.mount_options),
            "MountIdentifier" => enum_value(d, v, &mut p.mount_identifier),
            "RemoveDocs" => d.bool(v, &mut p.remove_docs),
            "OverlayBaseImage" => d.string(v, &mut p.overlay_base_image),
            "RdiffBaseImage" => d.string(v, &mut p.rdiff_base_image),
            _ => unreachable!("{}", f.name),
        },
        |_, _, _| {},
    );
}

pub(crate) fn network(d: &mut Decoder, node: &Node, out: &mut Network) {
    d.typed_object(
        node,
        &schema::NETWORK,
        out,
        |d, f, v, n| match f.name {
            "BootProto" => d.string(v, &mut n.boot_proto),
            "GateWay" => d.string(v, &mut n.gateway),
            "Ip" => d.string(v, &mut n.ip),
            "NetMask" => d.string(v, &mut n.netmask),
            "OnBoot" => d.bool(v, &mut n.on_boot),
            "NameServer" => d.string_list(v, f.go_type, &mut n.name_servers),
            "Device" => d.string(v, &mut n.device),
            _ => unreachable!("{}", f.name),
        },
        rules::network,
    );
}

pub(crate) fn package_repo(d: &mut Decoder, node: &Node, out: &mut PackageRepo) {
    d.typed_object(
        node,
        &schema::PACKAGE_REPO,
        out,
        |d, f, v, r| match f.name {
            "Name" => d.string(v, &mut r.name),
            "BaseUrl" => d.string(v, &mut r.base_url),
            "Install" => d.bool(v, &mut r.install),
            "GPGCheck" => d.bool(v, &mut r.gpg_check),
            "RepoGPGCheck" => d.bool(v, &mut r.repo_gpg_check),
            "GPGKeys" => d.string(v, &mut r.gpg_keys),
            _ => unreachable!("{}", f.name),
        },
        rules::package_repo,
    );
}

pub(crate) fn user(d: &mut Decoder, node: &Node, out: &mut User) {
    d.typed_object(
        node,
        &schema::USER,
        out,
        |d, f, v, u| match f.name {
            "Name" => d.string(v, &mut u.name),
            "UID" => d.string(v, &mut u.uid),
            "PasswordHashed" => d.bool(v, &mut u.password_hashed),
            "Password" => d.string(v, &mut u.password),
            "PasswordExpiresDays" => d.i64(v, &mut u.password_expires_days),
            "SSHPubKeyPaths" => d.string_list(v, f.go_type, &mut u.ssh_pub_key_paths),
            "SSHPubKeys" => d.string_list(v, f.go_type, &mut u.ssh_pub_keys),
            "PrimaryGroup" => d.string(v, &mut u.primary_group),
            "SecondaryGroups" => d.string_list(v, f.go_type, &mut u.secondary_groups),
            "StartupCommand" => d.string(v, &mut u.startup_command),
            "HomeDirectory" => d.string(v, &mut u.home_directory),
            _ => unreachable!("{}", f.name),
        },
        rules::user,
    );
}

fn additional_files(
    d: &mut Decoder,
    node: &Node,
    go_type: &str,
    out: &mut IndexMap<String, Vec<FileConfig>>,
) {
    match &node.value {
        Value::Null => out.clear(),
        Value::Object(members) => {
            for m in members {
                d.path.push(Seg::MapKey(m.key.clone()));
                let entry = out.entry(m.key.clone()).or_default();
                file_config_list(d, &m.value, entry);
                d.path.pop();
            }
        }
        _ => d.wrong_kind(node, go_type),
    }
}

/// `FileConfigList`: a destination path, a `{Path, Permissions}` object, or a list of both.
pub(crate) fn file_config_list(d: &mut Decoder, node: &Node, out: &mut Vec<FileConfig>) {
    d.frame(
        node,
        "failed to parse [FileConfigList]: ",
        out,
        |d, node, out| match &node.value {
            Value::String(_) | Value::Object(_) => {
                out.clear();
                out.push(FileConfig::default());
                file_config(d, node, &mut out[0]);
            }
            Value::Array(_) => d.list(node, "[]configuration.FileConfig", out, file_config),
            Value::Null => {}
            _ => d.wrong_kind(node, "[]configuration.FileConfig"),
        },
        |d, node, list| rules::file_config_list(d, node, list),
    );
}

fn file_config(d: &mut Decoder, node: &Node, out: &mut FileConfig) {
    d.frame(
        node,
        "failed to parse [FileConfig]: ",
        out,
        |d, node, fc| match &node.value {
            Value::String(s) => fc.path = s.clone(),
            _ => d.object(
                node,
                &schema::FILE_CONFIG,
                "configuration.IntermediateTypeFileConfig",
                |d, f, v| match f.name {
                    "Path" => d.string(v, &mut fc.path),
                    "Permissions" => file_permissions(d, v, &mut fc.permissions),
                    _ => unreachable!("{}", f.name),
                },
            ),
        },
        rules::file_config,
    );
}

/// `FilePermissions`: an octal string such as `"644"`.
pub(crate) fn file_permissions(d: &mut Decoder, node: &Node, out: &mut Option<u32>) {
    d.frame(
        node,
        "failed to parse [FilePermissions]: ",
        out,
        |d, node, out| match &node.value {
            Value::Null => {}
            Value::String(s) => {
                let path = path_string(&d.path);
                match rules::parse_permissions(s) {
                    Ok(mode) => *out = Some(mode),
                    Err(msg) => d.error_at(node.span, path, msg),
                }
            }
            _ => d.wrong_kind(node, "string"),
        },
        |_, _, _| {},
    );
}
