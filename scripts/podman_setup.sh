#!/usr/bin/env bash
# Set up rootful podman for CI and create a LOCAL Debian bookworm base image.
#
#   source scripts/podman_setup.sh && podman_setup   # exports CONTAINERS_* and BASE_IMAGE
#   bash scripts/podman_setup.sh                     # the same, then prints the settings
#
# - installs podman, runc, debootstrap, fuse-overlayfs, uidmap (only what is missing; root)
# - writes containers.conf (runtime runc, cgroupfs, ulimits), storage.conf and an empty
#   registries.conf under the cache dir and points podman at them (nothing in /etc changes)
# - debootstraps bookworm from the mirror this machine's apt already uses (read from
#   /etc/apt/sources.list{,.d}; no mirror is named here), copies the host's CA certificates
#   and apt access settings in, and imports it as localhost/debian:bookworm-slim; the rootfs
#   tarball is cached under $STROKEDFC_CI_CACHE (default ~/.cache/strokedfc-ci).
# Every function returns non-zero with a message on stderr when it cannot do its part.

CI_CACHE="${STROKEDFC_CI_CACHE:-${HOME:-/root}/.cache/strokedfc-ci}"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian:bookworm-slim}"

log() { printf '[podman-setup] %s\n' "$*" >&2; }

install_tools() {
  local missing=() tool pkg
  for tool in podman:podman runc:runc debootstrap:debootstrap fuse-overlayfs:fuse-overlayfs \
              newuidmap:uidmap; do
    pkg="${tool#*:}"
    command -v "${tool%%:*}" > /dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "tools present: $(podman --version)"
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null 2>&1; then
    log "cannot install ${missing[*]}: needs root and apt-get"
    return 1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" > "$CI_CACHE/apt-install.log" 2>&1 \
    || { log "apt-get install failed (see $CI_CACHE/apt-install.log)"; return 1; }
}

# Print the storage driver that works here: overlay (kernel) when possible, else vfs.
pick_storage_driver() {
  if [ -n "${STROKEDFC_STORAGE_DRIVER:-}" ]; then
    echo "$STROKEDFC_STORAGE_DRIVER"
    return
  fi
  local fstype probe
  fstype="$(stat -f -c %T "$CI_CACHE" 2> /dev/null || echo unknown)"
  probe="$(mktemp -d)"
  mkdir -p "$probe"/{l,u,w,m}
  if [ "$fstype" != overlayfs ] \
    && mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" \
      "$probe/m" 2> /dev/null; then
    umount "$probe/m"
    echo overlay
  else
    echo vfs
  fi
  rm -rf "$probe"
}

write_config() {
  local conf="$CI_CACHE/containers" driver
  mkdir -p "$conf/storage"
  driver="$(pick_storage_driver)"
  cat > "$conf/containers.conf" << 'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  cat > "$conf/storage.conf" << EOF
[storage]
driver = "$driver"
graphroot = "$conf/storage"
runroot = "/run/strokedfc-ci-containers-$(sha256sum <<< "$CI_CACHE" | cut -c1-8)"
EOF
  # Nothing is ever pulled: the base image is built here, builds use --pull=never.
  printf 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' \
    > "$conf/registries.conf"
  export CONTAINERS_CONF="$conf/containers.conf"
  export CONTAINERS_STORAGE_CONF="$conf/storage.conf"
  export CONTAINERS_REGISTRIES_CONF="$conf/registries.conf"
  log "storage driver $driver, graphroot $conf/storage"
}

# Print "URI SUITE" lines for the Debian entries of this machine's apt sources.
apt_debian_sources() {
  python3 - << 'EOF'
import glob, re

entries = []
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            entries.append((line[1], line[2]))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in block.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            entries += [(u, s) for u in fields.get("uris", []) for s in fields.get("suites", [])]
for uri, suite in entries:
    if suite.split("-")[0] == "bookworm" or suite.split("/")[0] == "bookworm":
        print(uri.rstrip("/"), suite)
EOF
}

make_base_image() {
  if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE present"
    return 0
  fi
  local sources mirror key tarball rootfs
  sources="$(apt_debian_sources)"
  mirror="$(awk '$2 == "bookworm" {print $1; exit}' <<< "$sources")"
  if [ -z "$mirror" ]; then
    log "no bookworm mirror in /etc/apt/sources.list{,.d}: cannot debootstrap"
    return 1
  fi
  key="$( (echo "$sources"; cat /usr/local/share/ca-certificates/* 2> /dev/null) \
    | sha256sum | cut -c1-12)"
  tarball="$CI_CACHE/debian-bookworm-rootfs-$key.tar"
  if [ ! -s "$tarball" ]; then
    rootfs="$(mktemp -d "$CI_CACHE/rootfs.XXXXXX")"
    log "debootstrap bookworm (minbase) from the machine's apt mirror into $rootfs"
    if ! debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" \
      > "$CI_CACHE/debootstrap.log" 2>&1; then
      log "debootstrap failed (see $CI_CACHE/debootstrap.log)"
      rm -rf "$rootfs"
      return 1
    fi
    # apt sources: the same Debian entries (updates, security) the host uses.
    awk '{print "deb " $1 " " $2 " main"}' <<< "$sources" > "$rootfs/etc/apt/sources.list"
    # apt access settings (proxies, snapshot validity) and CA certificates of this machine.
    grep -l -s 'Acquire::' /etc/apt/apt.conf.d/* | while read -r f; do
      cp "$f" "$rootfs/etc/apt/apt.conf.d/"
    done
    if compgen -G '/usr/local/share/ca-certificates/*' > /dev/null; then
      cp -r /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
      chroot "$rootfs" update-ca-certificates > /dev/null 2>&1 \
        || cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/var/log/*.log "$rootfs"/tmp/*
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  else
    log "using cached rootfs $tarball"
  fi
  podman import -q --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" > /dev/null \
    || { log "podman import failed"; return 1; }
  log "imported $BASE_IMAGE"
}

# Can podman start a container here at all?
podman_works() {
  local out
  if ! out="$(podman run --rm --network none "$BASE_IMAGE" /bin/true 2>&1)"; then
    log "podman cannot run a container here: $out"
    return 1
  fi
}

podman_setup() {
  mkdir -p "$CI_CACHE" || return 1
  install_tools && write_config && make_base_image && podman_works
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  podman_setup
  echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "export CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
  echo "export CONTAINERS_REGISTRIES_CONF=$CONTAINERS_REGISTRIES_CONF"
  echo "BASE_IMAGE=$BASE_IMAGE"
fi
