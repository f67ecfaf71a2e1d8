// The threads of this process that are alive, as /proc/self/task lists them.
//
// A thread that pthread_join has returned for can still be listed for a
// moment: the kernel wakes the joiner while the thread is on its way out
// (in do_exit, after it released its memory map) and removes its task
// entry only after that. Such a task has PF_EXITING in its flags from the
// start of do_exit on, so leaving those out counts a joined thread as gone
// at once, with no waiting.
#pragma once

#include <dirent.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace prefetch {
namespace testing {

// The kernel's PF_EXITING task flag (include/linux/sched.h).
constexpr unsigned long kTaskExiting = 0x4;

// The names (comm) of this process's threads that are not exiting.
inline std::vector<std::string> live_thread_names() {
  std::vector<std::string> names;
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return names;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + entry->d_name;
    std::ifstream stat_file(task + "/stat");
    std::stringstream stat;
    stat << stat_file.rdbuf();
    // "TID (COMM) STATE PPID PGRP SESSION TTY TPGID FLAGS ...": the name may
    // hold spaces and parentheses, so the fields are read after the last ')'.
    const std::string text = stat.str();
    const size_t close = text.rfind(')');
    if (close == std::string::npos) continue;  // gone while being read
    unsigned long flags = 0;
    if (std::sscanf(text.c_str() + close + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
      continue;
    if (flags & kTaskExiting) continue;
    std::ifstream comm_file(task + "/comm");
    std::string comm;
    if (std::getline(comm_file, comm)) names.push_back(comm);
  }
  closedir(dir);
  return names;
}

}  // namespace testing
}  // namespace prefetch
