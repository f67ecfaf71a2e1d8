// A deliberate data race for proving that the ThreadSanitizer run can fail.
//
// Built only with -DPREFETCHSRC_PLANT_RACE=ON (never in a release or a normal
// test build): planted_race_write() runs in an I/O-thread callback that GLib
// dispatches (Prefetcher's on_data), planted_race_read() on the reader's
// thread (Prefetcher::read). The global is touched outside every lock, so TSan
// must report "data race" naming these functions. If tsan.supp ever hides a
// race whose one side runs under a GLib callback, `tests/run --sanitize thread
// --plant-race` stops failing and says so. Without the macro both are empty.
#pragma once

namespace prefetch {
namespace planted {

#if defined(PREFETCHSRC_PLANT_RACE) && PREFETCHSRC_PLANT_RACE
inline unsigned long planted_race_global;  // deliberately unguarded

__attribute__((noinline)) inline void planted_race_write() { ++planted_race_global; }
__attribute__((noinline)) inline unsigned long planted_race_read() {
  return *static_cast<volatile unsigned long*>(&planted_race_global);
}
#else
inline void planted_race_write() {}
inline unsigned long planted_race_read() { return 0; }
#endif

}  // namespace planted
}  // namespace prefetch
