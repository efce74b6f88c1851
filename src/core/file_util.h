// Small file-system helpers shared by the library: atomic writes, reading, directories.
#pragma once

#include <string>

namespace cortex {

// Writes `content` to `path` through a temporary file in the same directory, fsync and rename:
// a crash leaves either the old file or the new one, never half of one. Throws Error(kIo).
void write_file_atomic(const std::string & path, const std::string & content, unsigned mode = 0644);

// Reads a whole file; returns false when it does not exist. Throws Error(kIo) on other errors.
bool read_file(const std::string & path, std::string & out);

// mkdir -p. Throws Error(kIo).
void make_dirs(const std::string & path, unsigned mode = 0755);

bool path_exists(const std::string & path);
// realpath(), or `path` itself when it cannot be resolved.
std::string canonical_path(const std::string & path);
bool is_regular_file(const std::string & path);

}  // namespace cortex
