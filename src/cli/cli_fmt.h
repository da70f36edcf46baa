/* Numbers written for people: sizes, durations, rates. */
#ifndef IG_CLI_FMT_H
#define IG_CLI_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes BYTES as "512 B", "1.5 KiB", "12.3 MiB", "4.07 GiB" into BUF (SIZE bytes). */
void cli_fmt_bytes(uint64_t bytes, char *buf, size_t size);

/* Writes SECONDS as "0.8s", "45s", "3m12s", "2h05m" or "3d04h" into BUF ("-" if negative). */
void cli_fmt_duration(double seconds, char *buf, size_t size);

/* Writes a rate per second as "0.35", "12.4", "1234" (3 significant figures below 1000) into
 * BUF ("-" if negative: unknown). */
void cli_fmt_rate(double per_s, char *buf, size_t size);

#endif
