/* units.h - parsing the sizes and durations users type.
 *
 * Pure functions: no allocation, no I/O, no error chain (callers name the
 * option or instruction in their own message). Thread-safe.
 */
#ifndef CSTORE_UNITS_H
#define CSTORE_UNITS_H

#include <stdbool.h>
#include <stdint.h>

enum {
    CS_DURATION_DAYS = 1 << 0,         /* also accept the unit "d" (86400 s) */
    CS_DURATION_BARE_SECONDS = 1 << 1, /* a number without a unit is seconds */
};

/* Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?unit)+ with units ns, us,
 * µs, ms, s, m, h, or "0"; flags widen it as above ("7d", "3600"). Writes
 * nanoseconds. False when malformed or out of range. */
bool cs_parse_duration(const char *s, unsigned flags, int64_t *ns);

/* Docker's sizes in decimal units: "10GB", "512mb", "1.5k", "1234" (bytes);
 * units b, k/kb, m/mb, g/gb, t/tb, any case. False when malformed or
 * negative. */
bool cs_parse_size(const char *s, uint64_t *out);

/* Docker's memory sizes (go-units RAMInBytes: --shm-size, --memory) in
 * binary units: "64m" is 64 MiB; "128", "1.5g", "512 MiB", "2kb"; units b,
 * k, m, g, t, p, each optionally followed by i and/or b, any case, one space
 * allowed before. False when malformed or negative. */
bool cs_parse_ram_size(const char *s, uint64_t *out);

#endif
