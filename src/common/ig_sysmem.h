/* What memory this machine has: RAM (or the cgroup limit) and the GPUs' own memory. */
#ifndef IG_SYSMEM_H
#define IG_SYSMEM_H

#include <stdint.h>

/* Returns the memory this process may use: MemTotal, or a smaller cgroup v2 limit; 0 when
 * /proc/meminfo cannot be read. */
uint64_t ig_ram_total_bytes(void);

/*
 * Returns the summed memory of the GPUs found, 0 when none: NVIDIA ones through
 * `nvidia-smi --query-gpu=memory.total` (found in PATH, given 10 s), AMD and other DRM
 * drivers through DRM_DIR/cardN/device/mem_info_vram_total (DRM_DIR NULL: /sys/class/drm).
 * Runs a process: call it only when the figure is needed.
 */
uint64_t ig_vram_total_bytes(const char *drm_dir);

#endif
