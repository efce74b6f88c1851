// Notices when the file behind a loaded model changes under libllama's mapping of it.
//
// libllama maps the weights (use_mmap): truncating the file in place turns the next read of a
// lost page into SIGBUS, and rewriting it in place changes the weights under a running model.
// Replacing the file (a new file renamed over it, as our downloads do) is harmless: the mapping
// keeps the old inode. So we watch the inode we loaded, not the path.
#pragma once

#include <sys/stat.h>

#include <string>

namespace cortex::llm {

class ModelFileWatch {
  public:
    // Opens `path` to keep its inode in view. Call before the model is loaded from it.
    explicit ModelFileWatch(const std::string & path);
    ~ModelFileWatch();
    ModelFileWatch(const ModelFileWatch &) = delete;
    ModelFileWatch & operator=(const ModelFileWatch &) = delete;

    // Throws Error(kInvalidModel) when the loaded file was truncated or rewritten since it was
    // opened: the model must not read its mapping again. Costs one fstat().
    void check() const;
    // True when the path now names another file than the one loaded (a reload would pick it up).
    bool replaced() const;

  private:
    std::string path_;
    int fd_ = -1;
    struct stat loaded_ {};
};

}  // namespace cortex::llm
