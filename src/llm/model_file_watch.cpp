#include "llm/model_file_watch.h"

#include <fcntl.h>
#include <unistd.h>

#include "cortex/error.h"

namespace cortex::llm {

ModelFileWatch::ModelFileWatch(const std::string & path) : path_(path) {
    // Without the file there is nothing to watch; loading it reports the clear error.
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0 && fstat(fd_, &loaded_) != 0) {
        close(fd_);
        fd_ = -1;
    }
}

ModelFileWatch::~ModelFileWatch() {
    if (fd_ >= 0) close(fd_);
}

void ModelFileWatch::check() const {
    if (fd_ < 0) return;
    struct stat now {};
    if (fstat(fd_, &now) != 0) return;
    const bool truncated = now.st_size < loaded_.st_size;
    const bool rewritten = now.st_size != loaded_.st_size || now.st_mtim.tv_sec != loaded_.st_mtim.tv_sec ||
                           now.st_mtim.tv_nsec != loaded_.st_mtim.tv_nsec;
    if (!truncated && !rewritten) return;
    throw Error(ErrorCode::kInvalidModel,
                "the model file '" + path_ + "' was " + (truncated ? "truncated" : "rewritten in place") +
                    " while loaded (" + std::to_string(loaded_.st_size) + " bytes then, " +
                    std::to_string(now.st_size) + " now): its weights can no longer be read",
                "restore the file (replace it whole: write a new file and rename it over the old), then reload: "
                "cortex-preload reload, or load the model again");
}

bool ModelFileWatch::replaced() const {
    struct stat now {};
    if (stat(path_.c_str(), &now) != 0) return true;
    return now.st_ino != loaded_.st_ino || now.st_dev != loaded_.st_dev;
}

}  // namespace cortex::llm
