#!/bin/sh
# The installer initrd lives in memory: what nobody reads there goes (documentation, locales,
# caches, the rpm database's indexes are kept so rpm -q works).
set -e
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/gtk-doc/*
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' ! -name 'locale.alias' -exec rm -rf {} +
rm -rf /var/cache/* /var/log/*.log /tmp/* /var/tmp/*
