# shellcheck shell=bash
# A real Linux guest for vhost-user tests: Debian's stock kernel (linux-image-amd64, unmodified, its virtio_net
# module) booted by QEMU under software emulation (TCG; no /dev/kvm needed) from a small busybox initramfs whose
# /init runs a test script given by the caller and powers off. Nothing is installed into the host's /boot: the
# kernel package is downloaded with apt-get and unpacked into a cache directory.
#
#   esw_guest_kernel           sets ESW_GUEST_KERNEL and ESW_GUEST_MODULES (downloads + unpacks once, cached)
#   esw_guest_initramfs OUT SCRIPT [FILE...]
#                              packs busybox, the virtio_net modules (in load order) and SCRIPT as the test;
#                              each FILE (e.g. a static helper binary) goes into the guest's /bin
#   esw_guest_boot LOG INITRD SOCKET MAC QUEUES EXTRA_DEVICE_OPTS...
#                              boots QEMU in the background (ESW_GUEST_PID), serial console to LOG; the guest's
#                              net device is a virtio-net-pci on a vhost-user chardev: QEMU is the client, or
#                              what ESW_GUEST_CHARDEV_OPTS says (",reconnect=1": client that reconnects every
#                              second; ",server=on,wait=off": QEMU listens, eswitchd in client mode connects),
#                              with the QEMU arguments in the array ESW_GUEST_QEMU_EXTRA appended (e.g. -qmp ...,
#                              -incoming ...: a migration's destination is the same command line plus -incoming);
#                              guest RAM: ESW_GUEST_MEM (default 256M).
#                              Baselines without vhost-user (defaults unchanged when unset): ESW_GUEST_NETDEV
#                              replaces the chardev + vhost-user netdev with "-netdev ESW_GUEST_NETDEV" (id=n0),
#                              ESW_GUEST_MEMDEV the memory backend object (id=mem), ESW_GUEST_ACCEL "-accel tcg",
#                              and the array ESW_GUEST_WRAP is put before qemu (e.g. ip netns exec NS).
ESW_GUEST_CACHE=${ESW_GUEST_CACHE:-/var/cache/eswitch/guest-kernel}
# The virtio_net stack in the order the modules depend on each other (modinfo -F depends; the package has no
# modules.dep, depmod writes it at install time).
ESW_GUEST_MODS=(drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_legacy_dev.ko
  drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci.ko net/core/failover.ko
  drivers/net/net_failover.ko drivers/net/virtio_net.ko)

esw_guest_kernel() {
  local pkg deb dir
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [[ -n "$pkg" ]] || { echo "guest: cannot resolve the kernel package behind linux-image-amd64 (apt-get update?)" >&2; return 1; }
  dir="$ESW_GUEST_CACHE/$pkg"
  if [[ ! -f "$dir/ok" ]]; then
    mkdir -p "$dir"
    (cd "$dir" && apt-get download -q "$pkg" >/dev/null 2>&1) || { echo "guest: apt-get download $pkg failed" >&2; return 1; }
    deb=$(ls "$dir"/*.deb | head -1)
    dpkg-deb -x "$deb" "$dir/x" && rm -f "$deb" && touch "$dir/ok"
  fi
  ESW_GUEST_KERNEL=$(ls "$dir"/x/boot/vmlinuz-* | head -1)
  ESW_GUEST_MODULES=$(ls -d "$dir"/x/lib/modules/*/kernel | head -1)
  [[ -f "$ESW_GUEST_KERNEL" && -d "$ESW_GUEST_MODULES" ]] || { echo "guest: kernel unpack in $dir is incomplete" >&2; return 1; }
}

esw_guest_initramfs() {
  local out=$1 script=$2 root m f i=0
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,mods}
  cp /bin/busybox "$root/bin/busybox"
  for m in "${ESW_GUEST_MODS[@]}"; do
    cp "$ESW_GUEST_MODULES/$m" "$root/mods/$(printf '%02d' $i)-$(basename "$m")"
    i=$((i + 1))
  done
  cp "$script" "$root/test.sh"
  for f in "${@:3}"; do cp "$f" "$root/bin/"; done
  cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
for m in /mods/*.ko; do insmod "$m" || echo "GUEST: insmod $m failed"; done
echo "GUEST: up $(cut -d' ' -f1 /proc/uptime)s"
sh /test.sh; echo "GUEST: test exit $?"
poweroff -f
INIT
  chmod +x "$root/init" "$root/test.sh"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$out")
  rm -rf "$root"
}

esw_guest_boot() {
  local log=$1 initrd=$2 sock=$3 mac=$4 queues=$5
  shift 5
  local devopts="" smp=1
  ((queues > 1)) && { devopts=",mq=on"; smp=$queues; }
  for o in "$@"; do devopts+=",$o"; done
  local mem=${ESW_GUEST_MEM:-256M}
  local net=(-chardev "socket,id=vu0,path=$sock${ESW_GUEST_CHARDEV_OPTS:-}"
    -netdev "vhost-user,id=n0,chardev=vu0,queues=$queues")
  [[ -n "${ESW_GUEST_NETDEV:-}" ]] && net=(-netdev "$ESW_GUEST_NETDEV,id=n0")
  ${ESW_GUEST_WRAP[@]+"${ESW_GUEST_WRAP[@]}"} qemu-system-x86_64 -accel "${ESW_GUEST_ACCEL:-tcg}" -machine pc \
    -cpu max -smp "$smp" -m "$mem" -nographic -no-reboot \
    -object "${ESW_GUEST_MEMDEV:-memory-backend-memfd,id=mem,size=$mem,share=on}" -numa node,memdev=mem \
    -kernel "$ESW_GUEST_KERNEL" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 loglevel=3" \
    "${net[@]}" \
    -device "virtio-net-pci,netdev=n0,mac=$mac,vectors=0$devopts" \
    -serial "file:$log" -monitor none -display none ${ESW_GUEST_QEMU_EXTRA[@]+"${ESW_GUEST_QEMU_EXTRA[@]}"} \
    </dev/null >"$log.qemu" 2>&1 &
  ESW_GUEST_PID=$!
}
