// The IPv4 TCP sockets of the machine, as /proc/net/tcp lists them.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace prefetch {
namespace testing {

struct TcpSocketEntry {
  unsigned local_port = 0;
  unsigned remote_port = 0;
  unsigned state = 0;  // the kernel's TCP state (1 = ESTABLISHED)
  std::string inode;   // matches a descriptor's "socket:[INODE]" link
};

// Every line of /proc/net/tcp that parses (the header does not).
inline std::vector<TcpSocketEntry> proc_net_tcp() {
  std::vector<TcpSocketEntry> out;
  std::ifstream in("/proc/net/tcp");
  for (std::string line; std::getline(in, line);) {
    TcpSocketEntry e;
    char inode[64];
    if (std::sscanf(line.c_str(), " %*d: %*x:%x %*x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %63s",
                    &e.local_port, &e.remote_port, &e.state, inode) == 4) {
      e.inode = inode;
      out.push_back(e);
    }
  }
  return out;
}

// The inodes of this process's socket descriptors (their /proc/self/fd
// links read "socket:[INODE]"), as TcpSocketEntry::inode spells them.
inline std::vector<std::string> own_socket_inodes() {
  std::vector<std::string> out;
  DIR* fds = opendir("/proc/self/fd");
  if (!fds) return out;
  while (const dirent* entry = readdir(fds)) {
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    char target[256];
    const ssize_t length = readlink(link.c_str(), target, sizeof target - 1);
    if (length <= 0) continue;
    target[length] = '\0';
    unsigned long inode = 0;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1) out.push_back(std::to_string(inode));
  }
  closedir(fds);
  return out;
}

}  // namespace testing
}  // namespace prefetch
