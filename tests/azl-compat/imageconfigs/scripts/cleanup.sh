#!/bin/bash
# FinalizeImageScript of baremetal, marketplace-gen2-cvm and qemu-guest: kiln's implementation
# of what microsoft/azurelinux toolkit/imageconfigs/scripts/cleanup.sh (branch 3.0) does to the
# image: the toolkit's /srv symlink, the package manager's cache, Python bytecode caches, the
# installed documentation and man pages, and the journal go; the disk usage is logged before
# and after. As upstream's, it never fails the build: a step that cannot run is reported and
# the next one runs. See README.md here.

report_usage() {
    echo "Disk usage (largest 20 under /, this filesystem):"
    du -xh --max-depth=2 / 2>/dev/null | sort -rh | head -n 20
}

step() {
    echo "cleanup: $*"
    "$@" || echo "cleanup: '$*' failed ($?); going on" >&2
}

# The toolkit leaves /srv as a symlink in the images it builds; the base images do without it.
if [[ -L /srv ]]; then
    step rm -f /srv
else
    echo "cleanup: /srv is not a symlink; nothing to remove"
fi

report_usage

# tdnf's cache: `tdnf clean all` where the image has tdnf, then whatever is left in its cachedir
# (tdnf.conf's cachedir, /var/cache/tdnf by default), which is what tdnf's own clean empties.
if command -v tdnf >/dev/null 2>&1; then
    step tdnf clean all
fi
cachedir=$(sed -n 's/^[[:space:]]*cachedir[[:space:]]*=[[:space:]]*//p' /etc/tdnf/tdnf.conf 2>/dev/null | tail -n 1)
cachedir=${cachedir:-/var/cache/tdnf}
if [[ -d $cachedir ]]; then
    echo "cleanup: emptying $cachedir"
    find "$cachedir" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + ||
        echo "cleanup: emptying $cachedir failed; going on" >&2
fi

# Python's bytecode caches, in every Python's library directory.
for pydir in /usr/lib/python*; do
    [[ -d $pydir ]] || continue
    echo "cleanup: removing __pycache__ directories under $pydir"
    find "$pydir" -depth -type d -name __pycache__ -exec rm -rf -- {} + ||
        echo "cleanup: removing __pycache__ under $pydir failed; going on" >&2
done

# Installed documentation and man pages (the directories themselves stay).
for docdir in /usr/share/doc /usr/share/man; do
    [[ -d $docdir ]] || continue
    echo "cleanup: emptying $docdir"
    find "$docdir" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + ||
        echo "cleanup: emptying $docdir failed; going on" >&2
done

# The journal: every archived journal file (anything older than a second).
if command -v journalctl >/dev/null 2>&1; then
    step journalctl --vacuum-time=1s
else
    echo "cleanup: no journalctl in the image; no journal to vacuum"
fi

report_usage
exit 0
