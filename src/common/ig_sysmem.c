/* Detection of RAM and GPU memory totals, for budgets given as percentages. */
#include "ig_sysmem.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

uint64_t ig_ram_total_bytes(void)
{
    unsigned long long kib = 0, limit = 0;
    char line[256];
    FILE *f = fopen("/proc/meminfo", "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (f != NULL && fgets(line, sizeof(line), f) != NULL && sscanf(line, "%llu", &limit) == 1 &&
        limit > 0 && limit < kib * 1024)
        kib = limit / 1024;
    if (f != NULL)
        fclose(f);
    return (uint64_t)kib * 1024;
}

/* Returns the MiB that nvidia-smi reports for all GPUs together, in bytes (0: none). */
static uint64_t nvidia_vram_bytes(void)
{
    unsigned long long mib, sum = 0;
    char line[128];
    /* timeout(1): a wedged driver can keep nvidia-smi from returning for minutes. */
    FILE *p = popen("timeout 10 nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits"
                    " 2>/dev/null </dev/null",
                    "r");

    if (p == NULL)
        return 0;
    while (fgets(line, sizeof(line), p) != NULL)
        if (sscanf(line, "%llu", &mib) == 1 && mib < (1ull << 30))
            sum += mib;
    if (pclose(p) != 0)
        return 0; /* not installed, no driver, or timed out: nothing reliable was read */
    return (uint64_t)sum << 20;
}

/* Returns whether NAME is "card" followed by digits only (not "card0-HDMI-A-1"). */
static int is_card_name(const char *name)
{
    if (strncmp(name, "card", 4) != 0 || name[4] == '\0')
        return 0;
    for (const char *c = name + 4; *c != '\0'; c++)
        if (!isdigit((unsigned char)*c))
            return 0;
    return 1;
}

/* Returns the summed mem_info_vram_total of the DRM cards under DIR, in bytes. */
static uint64_t drm_vram_bytes(const char *dir)
{
    unsigned long long bytes, sum = 0;
    char path[512];
    struct dirent *e;
    DIR *d = opendir(dir);

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (!is_card_name(e->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s/device/mem_info_vram_total", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f != NULL && fscanf(f, "%llu", &bytes) == 1)
            sum += bytes;
        if (f != NULL)
            fclose(f);
    }
    if (d != NULL)
        closedir(d);
    return sum;
}

uint64_t ig_vram_total_bytes(const char *drm_dir)
{
    return nvidia_vram_bytes() + drm_vram_bytes(drm_dir != NULL ? drm_dir : "/sys/class/drm");
}
