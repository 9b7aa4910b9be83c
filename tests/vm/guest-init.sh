#!/bin/sh
# /init of the test guest. Loads virtio-gpu, then runs the action named by neep.test= on the
# kernel command line. Lines starting "NEEP:" on the serial console are for the host side.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
    drm drm_kms_helper drm_shmem_helper virtio_dma_buf virtio-gpu; do
    insmod /modules/$module.ko 2>/dev/null
done

test_name=$(sed -n 's/.*neep\.test=\([^ ]*\).*/\1/p' /proc/cmdline)
serial=/dev/ttyS0

# Wait for the DRM device.
for i in $(seq 1 100); do
    [ -e /dev/dri/card0 ] && break
    sleep 0.1
done
if [ -e /dev/dri/card0 ]; then
    echo "NEEP: drm-ready" >$serial
else
    echo "NEEP: no-drm" >$serial
fi
dmesg | grep -i -E 'virtio.gpu|\[drm\]' | sed 's/^/NEEP-DMESG: /' >$serial

case "$test_name" in
fbcon)
    # Text on the console, in a spot the host looks for.
    printf '\033[2J\033[H' >/dev/tty1
    for i in 1 2 3 4 5 6 7 8; do
        echo "NEEP FBCON TEST LINE $i ################################################" >/dev/tty1
    done
    sleep 1
    echo "NEEP: fbcon-written" >$serial
    ;;
demo)
    # What the README's demo shows: this guest's own account of its GPU.
    {
        printf '\033[2J\033[H\n'
        echo "  neep-gpu demo: this text was drawn by a Linux guest on a virtio-gpu device"
        echo "  served by neep-gpu over vhost-user, and captured from QEMU's display."
        echo
        echo "  guest kernel: $(uname -r)"
        echo "  display:      $(cat /sys/class/drm/card0-Virtual-1/modes 2>/dev/null | head -n 1)"
        echo
        dmesg | grep -E '\[drm\] (features|number of)' | sed 's/^/  /'
    } >/dev/tty1
    sleep 1
    echo "NEEP: demo-written" >$serial
    ;;
run)
    # Runs /bin/$neep.program with its arguments from neep.args= (commas for spaces).
    program=$(sed -n 's/.*neep\.program=\([^ ]*\).*/\1/p' /proc/cmdline)
    args=$(sed -n 's/.*neep\.args=\([^ ]*\).*/\1/p' /proc/cmdline | tr ',' ' ')
    /bin/$program $args <$serial >$serial 2>&1
    echo "NEEP: program-exit $?" >$serial
    ;;
esac

echo "NEEP: waiting" >$serial
# The host takes its screendump, then sends "q" to quit or "r" to reboot.
while true; do
    sleep 3600
done
