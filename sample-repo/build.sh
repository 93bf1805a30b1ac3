#!/usr/bin/env bash
# Builds kiln's offline sample RPM repository: the spec files in specs/ turned into real RPMs by
# rpmbuild and indexed by createrepo_c. Binary payloads (kernel, busybox, GRUB, shim) come from
# Debian packages fetched with `apt-get download`.
#
#   sample-repo/build.sh [OUT_DIR]        (default: out/sample-repo)
#
# The result is rebuilt only when an input changes: the spec files, files/, this script, or the
# versions of the Debian packages. Downloaded .deb files are kept in a machine-wide cache keyed
# by name and version, /var/cache/kiln/debs (or $KILN_DEB_CACHE; ~/.cache/kiln/debs when that
# is not writable), so other checkouts, CI and `make clean` keep them; the work folder is
# out/sample-repo-cache (or $SAMPLE_REPO_CACHE). The repository appears under OUT_DIR only when
# complete.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
out=$(realpath -m "${1:-$top/out/sample-repo}")
cache=$(realpath -m "${SAMPLE_REPO_CACHE:-$top/out/sample-repo-cache}")
# Reproducible RPMs: fixed build time and host, mtimes clamped.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}

log() { echo "sample-repo: $*" >&2; }
need() {
    command -v "$1" >/dev/null || {
        log "$1 is missing: install the Debian package $2 (scripts/install-host-deps.sh sample-repo)"
        exit 1
    }
}
need rpmbuild rpm
need createrepo_c createrepo-c
need dpkg-deb dpkg
need grub-mkimage grub-common
need depmod kmod
need apt-get apt

# The Debian packages the payloads come from, at exact versions (part of the cache key).
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
if [ -z "$(candidate busybox-static)" ] || [ "$(candidate busybox-static)" = "(none)" ]; then
    log "refreshing the package lists (apt-get update)"
    apt-get update -qq
fi
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel_pkg" ] || { log "cannot find the package linux-image-cloud-amd64 depends on"; exit 1; }
debs=("$kernel_pkg" busybox-static grub-efi-amd64-bin grub-pc-bin shim-unsigned)
declare -A version
for p in "${debs[@]}"; do
    version[$p]=$(candidate "$p")
    [ -n "${version[$p]}" ] && [ "${version[$p]}" != "(none)" ] || { log "no candidate version of $p"; exit 1; }
done

key=$({
    for p in "${debs[@]}"; do echo "$p ${version[$p]}"; done
    cat "$here/build.sh" "$here"/specs/*.spec
    find "$here/files" -type f | sort | xargs cat
    echo "$SOURCE_DATE_EPOCH"
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/.kiln-sample-repo" ] && [ "$(cat "$out/.kiln-sample-repo")" = "$key" ]; then
    log "up to date: $out"
    exit 0
fi

# Download (into the machine-wide cache, once per version) and unpack.
debcache=$(realpath -m "${KILN_DEB_CACHE:-/var/cache/kiln/debs}")
if ! mkdir -p "$debcache" 2>/dev/null || [ ! -w "$debcache" ]; then
    debcache="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/debs"
    mkdir -p "$debcache"
fi
# The cached .deb of package $1 at version $2 (apt names files name_version_arch.deb, with the
# epoch's ':' as %3a).
cached_deb() { ls "$debcache/${1}_${2/:/%3a}_"*.deb 2>/dev/null | head -1; }
mkdir -p "$cache/debs"
rm -f "$cache/debs/"*.deb
for p in "${debs[@]}"; do
    if [ -z "$(cached_deb "$p" "${version[$p]}")" ]; then
        log "downloading $p ${version[$p]}"
        (cd "$debcache" && apt-get download -q -o APT::Sandbox::User=root "$p=${version[$p]}" >/dev/null)
    fi
    ln -sf "$(cached_deb "$p" "${version[$p]}")" "$cache/debs/"
done
rm -rf "$cache/unpack" "$cache/payload" "$cache/rpmbuild"
mkdir -p "$cache/unpack" "$cache/payload"
unpack() { mkdir -p "$cache/unpack/$1" && dpkg-deb -x "$cache/debs/$2_"*.deb "$cache/unpack/$1"; }
unpack kernel "$kernel_pkg"
unpack busybox busybox-static
unpack grub-efi grub-efi-amd64-bin
unpack grub-pc grub-pc-bin
unpack shim shim-unsigned
cp -a "$cache/unpack/busybox" "$cache/payload/busybox"
cp -a "$cache/unpack/shim" "$cache/payload/shim"
cp -a "$cache/unpack/grub-pc" "$cache/payload/grub-pc"

# grubx64.efi with prefix /boot/grub2, as Azure Linux builds it.
mkdir -p "$cache/payload/grub-efi"
grub-mkimage -O x86_64-efi -d "$cache/unpack/grub-efi/usr/lib/grub/x86_64-efi" -p /boot/grub2 \
    -o "$cache/payload/grub-efi/grubx64.efi" \
    part_gpt part_msdos fat ext2 xfs iso9660 normal configfile search search_fs_uuid search_fs_file \
    search_label linux boot echo test ls cat gzio efi_gop efi_uga all_video font gfxterm serial \
    terminal loadenv chain reboot halt minicmd sleep regexp

# The kernel: vmlinuz and the modules a VM needs, with everything they depend on.
kver=$(cd "$cache/unpack/kernel/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//')
depmod -b "$cache/unpack/kernel" "$kver"
wanted="virtio_pci virtio_blk virtio_scsi virtio_net virtio_console sd_mod sr_mod cdrom xfs vfat fat
        isofs squashfs overlay loop dm-mod nls_cp437 nls_ascii nls_utf8"
mods="$cache/unpack/kernel/lib/modules/$kver"
closure=$(for m in $wanted; do
    line=$(grep -E "/${m//-/[-_]}\.ko(\.[a-z]+)?:" "$mods/modules.dep" || true)
    [ -n "$line" ] || { grep -qE "/${m//-/[-_]}\.ko" "$mods/modules.builtin" && continue; log "module $m not found"; exit 1; }
    echo "$line" | tr -d ':' | tr ' ' '\n'
done | sort -u)
dest="$cache/payload/kernel/lib/modules/$kver"
mkdir -p "$cache/payload/kernel/boot" "$dest"
cp "$cache/unpack/kernel/boot/vmlinuz-$kver" "$cache/payload/kernel/boot/"
for f in $closure; do
    install -D -m 0644 "$mods/$f" "$dest/$f"
done
cp "$mods"/modules.order "$mods"/modules.builtin* "$dest/"
depmod -b "$cache/payload/kernel" "$kver"

# RPMs.
upstream() { local v=${1#*:}; echo "${v%-*}"; }
rpmbuild_one() {
    local spec=$1; shift
    rpmbuild -bb --quiet "$here/specs/$spec.spec" \
        --define "_topdir $cache/rpmbuild" \
        --define "dist .azl3" \
        --define "payload $cache/payload" \
        --define "sources_dir $here/files" \
        --define "kver $kver" \
        --define "kernel_version $(upstream "${version[$kernel_pkg]}")" \
        --define "busybox_version $(upstream "${version[busybox-static]}")" \
        --define "grub_version $(upstream "${version[grub-efi-amd64-bin]}" | sed 's/[+~].*//')" \
        --define "shim_version $(upstream "${version[shim-unsigned]}" | sed 's/[+~].*//')" \
        --define "_buildhost kiln-sample" \
        --define "use_source_date_epoch_as_buildtime 1" \
        --define "clamp_mtime_to_source_epoch 1" \
        --define "_build_id_links none" \
        --define "debug_package %{nil}" \
        --define "__os_install_post %{nil}" \
        "$@" >/dev/null
}
for spec in filesystem azurelinux-release busybox shadow-utils kernel initramfs grub2-efi-binary \
            shim grub2-pc sample-app sample-mta-postfix sample-mta-exim sample-rich sample-tools \
            sample-minimal sample-docs sample-old sample-new; do
    log "building $spec"
    rpmbuild_one "$spec"
done
for v in 1.0 1.1 2.0; do
    log "building sample-libfoo $v"
    rpmbuild_one sample-libfoo --define "ver $v"
done
rpmbuild_one sample-epoch --define "ver 1.0" --define "ep 1"
rpmbuild_one sample-epoch --define "ver 2.0" --define "ep 0"

# The repository, in place only when complete.
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
find "$cache/rpmbuild/RPMS" -name '*.rpm' -exec cp {} "$tmp/" \;
# createrepo_c records each file's mtime: fix it, for identical metadata on every build.
find "$tmp" -name '*.rpm' -exec touch -d "@$SOURCE_DATE_EPOCH" {} +
createrepo_c --quiet --revision "$SOURCE_DATE_EPOCH" --set-timestamp-to-revision "$tmp" >/dev/null
echo "$key" > "$tmp/.kiln-sample-repo"
rm -rf "$out"
mv "$tmp" "$out"
log "$(find "$out" -name '*.rpm' | wc -l) packages in $out"
