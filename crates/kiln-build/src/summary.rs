//! What a build of a config would do, without doing it: validate and resolve only (no root, no
//! downloads of packages).

use crate::error::{Error, ErrorKind};
use crate::event::{Event, Stage};
use crate::host::Tool;
use crate::sources::{SourceOptions, Sources};
use crate::validate::{validate, ValidateRequest, Validated};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Which config, resolved against which sources.
#[derive(Debug, Clone)]
pub struct SummaryRequest {
    pub validate: ValidateRequest,
    pub sources: SourceOptions,
}

/// One package the image would get.
#[derive(Debug, Clone)]
pub struct PackageLine {
    pub nevra: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Download size and installed size, in bytes.
    pub size: u64,
    pub installed_size: u64,
    pub source: String,
}

/// One partition of the disk.
#[derive(Debug, Clone)]
pub struct PartitionLine {
    pub id: String,
    pub fs_type: String,
    /// In MiB; `end` 0 = to the end of the disk.
    pub start: u64,
    pub end: u64,
    pub mount_point: String,
}

/// What a build of the config would do.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub system_config: String,
    /// `disk` or `rootfs`.
    pub kind: &'static str,
    pub packages: Vec<PackageLine>,
    pub sources: Vec<&'static str>,
    pub partitions: Vec<PartitionLine>,
    /// Artifact names as roast makes them (`Name.type[.compression]`).
    pub artifacts: Vec<String>,
    /// The host programs the build would run.
    pub tools: Vec<Tool>,
}

/// Validates and resolves the config (the first SystemConfig's packages, as compose installs
/// them) and lists what a build would make.
pub fn summary(req: &SummaryRequest, on_event: &mut dyn FnMut(Event)) -> Result<Summary, Error> {
    let validated = validate(&req.validate, on_event)?;
    let packages = resolve(req, &validated, on_event)?;
    let (config, sc) = (validated.config(), &validated.config().system_configs[0]);
    let disk = !config.disks.is_empty() && !sc.partition_settings.is_empty();
    let mount = |id: &str| {
        sc.partition_settings
            .iter()
            .find(|s| s.id == id)
            .map_or(String::new(), |s| s.mount_point.clone())
    };
    let partitions = config
        .disks
        .iter()
        .flat_map(|d| &d.partitions)
        .map(|p| PartitionLine {
            id: p.id.clone(),
            fs_type: p.fs_type.clone(),
            start: p.start,
            end: p.end,
            mount_point: mount(&p.id),
        })
        .collect();
    let opts = kiln_roast::Options {
        input_dir: PathBuf::from("imager_output"),
        output_dir: PathBuf::from("."),
        release_version: String::new(),
        image_tag: String::new(),
        workers: 1,
    };
    let (jobs, _) =
        kiln_roast::plan(config, &opts).map_err(Error::of(Stage::Roast, ErrorKind::Artifact))?;
    let artifacts = jobs
        .iter()
        // A rootfs tarball has no type, only its compression: `core.tar.gz`, not `core..tar.gz`.
        .map(|j| {
            [j.full_name.as_str(), j.ty.as_str(), j.compression.as_str()]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    let mut tools = crate::host::compose_tools(config);
    tools.extend(crate::host::roast_tools(config));
    Ok(Summary {
        name: validated.name.clone(),
        system_config: sc.name.clone(),
        kind: if disk { "disk" } else { "rootfs" },
        packages: packages.0,
        sources: packages.1,
        partitions,
        artifacts,
        tools,
    })
}

type Resolved = (Vec<PackageLine>, Vec<&'static str>);

fn resolve(
    req: &SummaryRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<Resolved, Error> {
    let loaded = &validated.loaded;
    let sc = &loaded.config.system_configs[0];
    let disk = !loaded.config.disks.is_empty() && !sc.partition_settings.is_empty();
    let invalid = |e: String| Error::new(Stage::Validate, ErrorKind::InvalidConfig, e);
    let mut requests = Vec::new();
    for (text, origin) in
        kiln_config::packages::requested(sc, &loaded.config_path, disk).map_err(invalid)?
    {
        requests.push(kiln_solve::solve::Request::parse(&text, &origin).map_err(invalid)?);
    }
    let mut sources = Sources::plan(&req.sources, None)?;
    let resolution = sources.resolve_tiered(&requests, &req.sources.solve_options(), on_event)?;
    let pool = &sources.pool;
    let mut lines: Vec<PackageLine> = resolution
        .packages
        .iter()
        .map(|&id| {
            let p = pool.package(id);
            PackageLine {
                nevra: p.nevra(),
                name: p.name.clone(),
                version: p.evr.to_string(),
                arch: p.arch.clone(),
                size: p.size,
                installed_size: p.installed_size,
                source: pool.source(id).name.clone(),
            }
        })
        .collect();
    lines.sort_by(|a, b| a.nevra.cmp(&b.nevra));
    Ok((lines, sources.tiers.clone()))
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "system_config": self.system_config,
            "kind": self.kind,
            "sources": self.sources,
            "packages": self.packages.iter().map(|p| json!({
                "nevra": p.nevra, "name": p.name, "version": p.version, "arch": p.arch,
                "size": p.size, "installed_size": p.installed_size, "source": p.source,
            })).collect::<Vec<_>>(),
            "download_size": self.packages.iter().map(|p| p.size).sum::<u64>(),
            "installed_size": self.packages.iter().map(|p| p.installed_size).sum::<u64>(),
            "partitions": self.partitions.iter().map(|p| json!({
                "id": p.id, "fs_type": p.fs_type, "start_mib": p.start, "end_mib": p.end,
                "mount_point": p.mount_point,
            })).collect::<Vec<_>>(),
            "artifacts": self.artifacts,
            "host_tools": self.tools.iter().map(|t| json!({
                "program": t.program, "package": t.package, "purpose": t.purpose,
            })).collect::<Vec<_>>(),
        })
    }
}
