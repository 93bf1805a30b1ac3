//! OVA: a ustar archive of an OVF descriptor, a manifest of SHA-256 digests and a
//! stream-optimized VMDK — made without VMware's ovftool.
//!
//! The virtual hardware is upstream's `vmx-template` (hardware version 13, one vCPU, 2 GiB,
//! paravirtual SCSI disk, vmxnet3 NIC not connected, an IDE CD-ROM, guest "other 64-bit"), and
//! the product section upstream's `ovfinfo.txt` adds ("Azure Linux", Microsoft Corporation).

use crate::ident::Identity;
use crate::sparse::SparseInput;
use crate::tar::TarWriter;
use crate::{vmdk, Error, OutFile};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// Builds `output` (`<base>.ova` holding `<base>.ovf`, `<base>.mf`, `<base>-disk1.vmdk`) from the
/// raw disk `input`. Returns warnings.
pub fn write(input: &Path, output: &Path, ident: &Identity) -> Result<Vec<String>, Error> {
    let io_err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let base = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "disk".into());
    let vmdk_name = format!("{base}-disk1.vmdk");
    let src = SparseInput::open(input).map_err(io_err("cannot read", input))?;

    // The disk first, into a temporary file: the manifest (which precedes it in the archive)
    // needs its digest.
    let mut vmdk_tmp = OutFile::create(&output.with_file_name(&vmdk_name))
        .map_err(io_err("cannot create", output))?;
    let converted = vmdk::write(&src, vmdk_tmp.file(), &vmdk_name, ident)
        .map_err(io_err("cannot write", output))?;
    let (vmdk_size, vmdk_digest) =
        digest_file(vmdk_tmp.file()).map_err(io_err("cannot read", output))?;

    let ovf = ovf_descriptor(&base, &vmdk_name, vmdk_size, converted.virtual_size);
    let ovf_name = format!("{base}.ovf");
    let manifest = format!(
        "SHA256({vmdk_name})= {vmdk_digest}\nSHA256({ovf_name})= {}\n",
        hex(&Sha256::digest(ovf.as_bytes()))
    );

    let mut out = OutFile::create(output).map_err(io_err("cannot create", output))?;
    let mtime = ident.unix_time();
    (|| -> io::Result<()> {
        let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, out.file()), None);
        tar.append_data(&ovf_name, 0o644, mtime, ovf.len() as u64, ovf.as_bytes())?;
        tar.append_data(
            &format!("{base}.mf"),
            0o644,
            mtime,
            manifest.len() as u64,
            manifest.as_bytes(),
        )?;
        let disk = vmdk_tmp.file();
        disk.sync_data()?;
        let reader = io::BufReader::with_capacity(1 << 20, &*disk);
        tar.append_data(&vmdk_name, 0o644, mtime, vmdk_size, reader)?;
        tar.finish()?.flush()
    })()
    .map_err(io_err("cannot write", output))?;
    out.commit().map_err(io_err("cannot write", output))?;
    drop(vmdk_tmp); // removed: only the archive holds the disk
    Ok(converted.warnings)
}

fn digest_file(f: &mut File) -> io::Result<(u64, String)> {
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    f.seek(io::SeekFrom::Start(0))?;
    Ok((size, hex(&h.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Escapes text for XML attribute and element content.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The OVF 1.0 descriptor.
pub fn ovf_descriptor(name: &str, vmdk_name: &str, vmdk_size: u64, capacity: u64) -> String {
    let name = xml(name);
    let vmdk_name = xml(vmdk_name);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{vmdk_name}" ovf:id="file1" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="None">
      <Description>The None network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="102" vmw:osType="otherGuest64">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>1 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>2048MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>IDE 1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item ovf:required="false">
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>CD-ROM 1</rasd:ElementName>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceSubType>vmware.cdrom.remotepassthrough</rasd:ResourceSubType>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>2</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:Connection>None</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on "None"</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
    <ProductSection>
      <Info>Information about the installed software</Info>
      <Product>Azure Linux</Product>
      <Vendor>Microsoft Corporation</Vendor>
      <Version>1.0</Version>
      <FullVersion>1.0</FullVersion>
    </ProductSection>
    <AnnotationSection>
      <Info>Description of the Product</Info>
      <Annotation>This OVA provides a minimal installed profile of Azure Linux.</Annotation>
    </AnnotationSection>
  </VirtualSystem>
</Envelope>
"#
    )
}
