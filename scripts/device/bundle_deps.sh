#!/usr/bin/env bash
# Run HERE (Debian 12): unpacks the Debian -dev packages c3 builds against into .deps/, so that
# the GPU machine (which has LibTorch but none of these, and no network) can build c3 too.
# Carry .deps with the device call and source scripts/device/env.sh there.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PKGS=(nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 libpcre2-dev libpcre2-8-0 libpcre2-16-0
      libpcre2-32-0 libpcre2-posix3 libutf8proc-dev libutf8proc2 liblzma-dev libxxhash-dev libxxhash0
      libgtest-dev libgmock-dev pkgconf pkgconf-bin libpkgconf3
      libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3 zlib1g-dev libbrotli-dev libbrotli1)
rm -rf .deps && mkdir -p .deps/debs
(cd .deps/debs && apt-get download "${PKGS[@]}" >/dev/null)
for d in .deps/debs/*.deb; do dpkg -x "$d" .deps/root; done
rm -rf .deps/debs .deps/root/usr/share/doc .deps/root/usr/share/man  # docs: not needed, and the tree must stay under 64 MiB
# c3 links OpenSSL, zlib and brotli (cpp-httplib's needs) shared: their static archives only weigh.
rm -f .deps/root/usr/lib/x86_64-linux-gnu/{libssl,libcrypto,libz,libbrotli*}.a
# pkg-config files say prefix=/usr: make them relative to where they lie.
for pc in $(find .deps/root -name '*.pc'); do
  depth=$(dirname "${pc#.deps/root/usr/}" | awk -F/ '{print NF}')
  rel=$(printf '/..%.0s' $(seq 1 "$depth"))
  sed -i "s|^prefix=/usr|prefix=\${pcfiledir}${rel}|" "$pc"
done
du -sh .deps
