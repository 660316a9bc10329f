#!/bin/bash
# mkext4.sh DIR IMAGE SIZE_MIB LABEL UUID: a reproducible ext4 image (4 KiB blocks) from DIR,
# built with mke2fs -d (no mounting, no root needed). Used by the other build scripts.
set -euo pipefail
DIR="$1" IMG="$2" MIB="$3" LABEL="$4" UUID="$5"
# Fixed times for everything: file mtimes in DIR and the superblock/inode times mke2fs writes.
find "$DIR" -exec touch -h -d '2025-01-01 00:00:00 UTC' {} +
rm -f "$IMG"
E2FSPROGS_FAKE_TIME=1735689600 mke2fs -q -F -t ext4 -b 4096 -L "$LABEL" -U "$UUID" \
  -E root_owner=0:0,hash_seed="$UUID" -d "$DIR" "$IMG" "${MIB}M" >/dev/null
# mke2fs -d copies each file's ctime (which touch cannot set): pin ctime (and crtime) too.
cmds=$(cd "$DIR" && find . -mindepth 1 | LC_ALL=C sort | sed 's|^\.||' | while read -r p; do
  printf 'sif "%s" ctime 20250101000000\nsif "%s" ctime_extra 0\nsif "%s" crtime 20250101000000\nsif "%s" crtime_extra 0\n' "$p" "$p" "$p" "$p"
done)
printf '%s\n' "$cmds" | E2FSPROGS_FAKE_TIME=1735689600 debugfs -w -f - "$IMG" >/dev/null 2>&1
e2fsck -fn "$IMG" >/dev/null 2>&1 || { echo "mkext4.sh: e2fsck found problems in $IMG" >&2; e2fsck -fn "$IMG"; exit 1; }
