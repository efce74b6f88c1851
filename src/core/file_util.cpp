// Atomic writes and other file helpers.
#include "file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cortex/error.h"

namespace cortex {
namespace {

[[noreturn]] void io_error(const std::string & what, const std::string & path) {
    throw Error(ErrorCode::kIo, what + " '" + path + "': " + strerror(errno),
                errno == ENOSPC ? "free some disk space and retry" : "check the path and its permissions");
}

}  // namespace

bool path_exists(const std::string & path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

std::string canonical_path(const std::string & path) {
    char * real = realpath(path.c_str(), nullptr);
    if (!real) return path;
    std::string out(real);
    free(real);
    return out;
}

bool is_regular_file(const std::string & path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void make_dirs(const std::string & path, unsigned mode) {
    if (path.empty() || path_exists(path)) return;
    size_t slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) make_dirs(path.substr(0, slash), mode);
    if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) io_error("cannot create directory", path);
}

bool read_file(const std::string & path, std::string & out) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return false;
        io_error("cannot open", path);
    }
    out.clear();
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd);
            errno = saved;
            io_error("cannot read", path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return true;
}

void write_file_atomic(const std::string & path, const std::string & content, unsigned mode) {
    size_t slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) make_dirs(path.substr(0, slash));
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) io_error("cannot create", tmp);
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int saved = errno;
            close(fd);
            unlink(tmp.c_str());
            errno = saved ? saved : EIO;
            io_error("cannot write", path);
        }
        done += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(tmp.c_str());
        errno = saved;
        io_error("cannot write", path);
    }
    close(fd);
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        int saved = errno;
        unlink(tmp.c_str());
        errno = saved;
        io_error("cannot replace", path);
    }
}

}  // namespace cortex
