/* Monotonic clock helpers. */
#ifndef IG_TIME_H
#define IG_TIME_H

#include <stdint.h>

/* Returns the monotonic clock in milliseconds. */
uint64_t ig_now_ms(void);

/* Returns the monotonic clock in microseconds. */
uint64_t ig_now_us(void);

/* Returns wall-clock seconds since the epoch. */
int64_t ig_unix_s(void);

#endif
